"""Sequence files: parse and validate the TOML, with errors that name the file and line.

The format is described in ``nurture/sequence.example.toml``. Mail templates
are written inline (``markdown = \"\"\"…\"\"\"``) or in files next to the sequence
(``file = "welcome.de.md"``), which are stored with each version.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from leadvault import i18n, tomlfile
from leadvault.tomlfile import Where
from nurture.definition import (
    STAGE_RANK,
    TRIGGERS,
    WEEKDAYS,
    Audience,
    Condition,
    Exit,
    Sequence,
    Step,
    Trigger,
    Wait,
)
from nurture.render import CompiledMail, TemplateProblem, compile_mail

KEY = re.compile(r"^[a-z][a-z0-9_\-]{0,31}$")
STEP_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,79}$")
EVENT = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
FILE_NAME = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-/]{0,200}$")
_UNTIL = re.compile(r"^\s*(?:([a-z]+)\s+)?([01]?\d|2[0-3]):([0-5]\d)\s*$")
GRADES = ("A", "B", "C", "D")
END = "end"


class SequenceError(tomlfile.SourceError):
    """A sequence file the service refuses; the message names file and line."""


class _Checker(tomlfile.Checker):
    def __init__(self, text: str, source: str) -> None:
        super().__init__(text, source, SequenceError)


def _string_set(
    check: _Checker, table: dict[str, Any], key: str, where: Where, allowed: tuple[str, ...] = ()
) -> frozenset[str] | None:
    value = table.get(key)
    if value is None:
        return None
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise check.fail(f"{key} must be a string or a list of strings", *where, key)
    if allowed:
        unknown = [v for v in values if v not in allowed]
        if unknown:
            raise check.fail(
                f"{key}: unknown value {unknown[0]!r}; use {', '.join(allowed)}", *where, key
            )
    return frozenset(values)


def _range(
    check: _Checker, table: dict[str, Any], key: str, where: Where
) -> tuple[float | None, float | None]:
    value = table.get(key)
    if value is None:
        return None, None
    if not isinstance(value, dict) or not value or set(value) - {"min", "max"}:
        raise check.fail(f"{key} must be a table such as {{ min = 10, max = 50 }}", *where, key)
    bounds = []
    for op in ("min", "max"):
        bound = value.get(op)
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int | float)):
            raise check.fail(f"{key}: {op} must be a number", *where, key)
        bounds.append(float(bound) if bound is not None else None)
    low, high = bounds
    if low is not None and high is not None and low > high:
        raise check.fail(f"{key}: min is larger than max", *where, key)
    return low, high


def _stage(check: _Checker, value: Any, where: Where, key: str) -> str:
    if not isinstance(value, str) or value not in STAGE_RANK:
        raise check.fail(f"{key} must be one of {', '.join(STAGE_RANK)}", *where, key)
    return value


# --- sections -------------------------------------------------------------------------


def _header(
    check: _Checker, data: dict[str, Any], known_purposes: Mapping[str, bool] | None
) -> dict[str, Any]:
    table = data.get("sequence")
    where: Where = ("sequence", None)
    if not isinstance(table, dict):
        raise check.fail("a sequence file starts with a [sequence] table", "sequence")
    check.only_keys(table, {"key", "name", "purpose", "languages", "reentry"}, where)
    key = table.get("key")
    if not isinstance(key, str) or not KEY.match(key):
        raise check.fail(
            "key must be lower-case letters, digits, _ or - (at most 32)", *where, "key"
        )
    name = table.get("name", key)
    if not isinstance(name, str) or not name.strip() or len(name) > 120:
        raise check.fail("name must be a text of at most 120 characters", *where, "name")
    purpose = table.get("purpose")
    if not isinstance(purpose, str) or not purpose:
        raise check.fail("purpose must name the consent purpose mails are sent under", *where)
    if known_purposes is not None:
        if purpose not in known_purposes:
            raise check.fail(
                f"unknown purpose {purpose!r}; purposes are {', '.join(sorted(known_purposes))}",
                *where,
                "purpose",
            )
        if not known_purposes[purpose]:
            raise check.fail(f"purpose {purpose!r} is not a marketing purpose", *where, "purpose")
    languages = _string_set(check, table, "languages", where, i18n.LANGUAGES)
    reentry = table.get("reentry", False)
    if not isinstance(reentry, bool):
        raise check.fail("reentry must be true or false", *where, "reentry")
    ordered = tuple(lang for lang in i18n.LANGUAGES if languages is None or lang in languages)
    return {
        "key": key,
        "name": name.strip(),
        "purpose": purpose,
        "languages": ordered,
        "reentry": reentry,
    }


def _trigger(check: _Checker, data: dict[str, Any], purpose: str) -> Trigger:
    table = data.get("trigger")
    where: Where = ("trigger", None)
    if not isinstance(table, dict):
        raise check.fail("a sequence needs a [trigger] table", "sequence")
    check.only_keys(table, {"on", "purpose", "form", "asset", "stage", "event"}, where)
    on = table.get("on")
    if on not in TRIGGERS:
        raise check.fail(f"on must be one of {', '.join(TRIGGERS)}", *where, "on")
    fields: dict[str, str | None] = {}
    for key in ("purpose", "form", "asset", "stage", "event"):
        value = table.get(key)
        if value is not None and not isinstance(value, str):
            raise check.fail(f"{key} must be a string", *where, key)
        fields[key] = value
    expected = {
        "purpose_confirmed": {"purpose"},
        "form_submitted": {"form"},
        "asset_downloaded": {"asset"},
        "stage_entered": {"stage"},
        "event": {"event"},
    }[on]
    extra = sorted(k for k, v in fields.items() if v is not None and k not in expected)
    if extra:
        raise check.fail(f"{extra[0]} does not apply to on = {on!r}", *where, extra[0])
    if on == "purpose_confirmed":
        fields["purpose"] = fields["purpose"] or purpose
    if on == "stage_entered":
        fields["stage"] = _stage(check, fields["stage"], where, "stage")
    if on == "event" and not (fields["event"] and EVENT.match(fields["event"])):
        raise check.fail("event must name an event type (lower-case, digits, _)", *where, "event")
    return Trigger(on=on, **fields)


def _audience(check: _Checker, data: dict[str, Any]) -> Audience:
    table = data.get("audience", {})
    where: Where = ("audience", None)
    if not isinstance(table, dict):
        raise check.fail("audience must be a table", "audience")
    check.only_keys(table, {"grade", "score", "form", "language"}, where)
    low, high = _range(check, table, "score", where)
    return Audience(
        grades=_string_set(check, table, "grade", where, GRADES),
        score_min=low,
        score_max=high,
        forms=_string_set(check, table, "form", where),
        languages=_string_set(check, table, "language", where, i18n.LANGUAGES),
    )


def _exit(check: _Checker, data: dict[str, Any]) -> Exit:
    table = data.get("exit", {})
    where: Where = ("exit", None)
    if not isinstance(table, dict):
        raise check.fail("exit must be a table", "exit")
    check.only_keys(table, {"stage", "handoff", "goal_events"}, where)
    stage = table.get("stage", "sal")
    if stage is not False:
        stage = _stage(check, stage, where, "stage")
        if STAGE_RANK[stage] == 0:
            raise check.fail("stage must be mql or later (or false)", *where, "stage")
    handoff = table.get("handoff", "accepted")
    if handoff not in {"offered", "accepted", False}:
        raise check.fail('handoff must be "offered", "accepted" or false', *where, "handoff")
    goals = table.get("goal_events", [])
    if not isinstance(goals, list) or not all(isinstance(g, str) and EVENT.match(g) for g in goals):
        raise check.fail("goal_events must be a list of event type names", *where, "goal_events")
    return Exit(stage=stage or None, handoff=handoff or None, goal_events=tuple(goals))


def _wait(check: _Checker, raw: Any, where: Where) -> Wait:
    if not isinstance(raw, dict) or not raw:
        raise check.fail(
            'wait must be a table such as { days = 2 } or { until = "tuesday 10:00" }',
            *where,
            "wait",
        )
    unknown = sorted(set(raw) - {"days", "hours", "minutes", "until", "zone"})
    if unknown:
        raise check.fail(f"wait: unknown key {unknown[0]!r}", *where, "wait")
    if "until" in raw:
        if set(raw) & {"days", "hours", "minutes"}:
            raise check.fail("wait: use either a duration or until, not both", *where, "wait")
        found = _UNTIL.match(str(raw["until"]).lower()) if isinstance(raw["until"], str) else None
        day = found.group(1) if found else None
        if not found or (day is not None and day not in (*WEEKDAYS, "weekday")):
            raise check.fail(
                'wait: until must be "HH:MM", "weekday HH:MM" or a day such as "tuesday 10:00"',
                *where,
                "wait",
            )
        zone = raw.get("zone", "instance")
        if zone not in {"lead", "instance"}:
            raise check.fail('wait: zone must be "lead" or "instance"', *where, "wait")
        return Wait(
            weekday=WEEKDAYS.index(day) if day in WEEKDAYS else None,
            weekdays_only=day == "weekday",
            at=dt.time(int(found.group(2)), int(found.group(3))),
            zone=zone,
        )
    if "zone" in raw:
        raise check.fail("wait: zone applies to until only", *where, "wait")
    amounts = {}
    for unit in ("days", "hours", "minutes"):
        value = raw.get(unit, 0)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise check.fail(f"wait: {unit} must be a number of at least 0", *where, "wait")
        amounts[unit] = float(value)
    delay = dt.timedelta(**amounts)
    if delay <= dt.timedelta(0) or delay > dt.timedelta(days=366):
        raise check.fail("wait: the delay must be more than 0 and at most a year", *where, "wait")
    return Wait(delay=delay)


def _condition(check: _Checker, raw: Any, where: Where) -> Condition:
    if not isinstance(raw, dict) or not raw:
        raise check.fail('if must be a table such as { clicked = "welcome" }', *where, "if")
    if "opened" in raw:
        raise check.fail(
            "opened is never a condition: Leadvault does not track whether mails are opened",
            *where,
            "if",
        )
    unknown = sorted(set(raw) - {"clicked", "downloaded", "score", "stage", "event"})
    if unknown:
        raise check.fail(
            f"unknown condition {unknown[0]!r}; use clicked, downloaded, score, stage or event",
            *where,
            "if",
        )
    for key in ("clicked", "downloaded"):
        value = raw.get(key)
        if value is not None and value is not True and not isinstance(value, str):
            raise check.fail(f"{key} must be true or a name", *where, "if")
    low, high = _range(check, raw, "score", where)
    stages = _string_set(check, raw, "stage", where, tuple(STAGE_RANK))
    events = _string_set(check, raw, "event", where)
    if events is not None and not all(EVENT.match(e) for e in events):
        raise check.fail("event must name event types", *where, "if")
    return Condition(
        clicked=raw.get("clicked"),
        downloaded=raw.get("downloaded"),
        score_min=low,
        score_max=high,
        stages=stages,
        events=tuple(sorted(events or ())),
    )


def _steps(check: _Checker, data: dict[str, Any]) -> tuple[list[dict[str, Any]], list[Step]]:
    raw_steps = check.list_of_tables(data, "steps")
    if not raw_steps:
        raise check.fail("a sequence needs at least one [[steps]] entry", "sequence")
    names: list[str] = []
    for i, entry in enumerate(raw_steps):
        name = entry.get("name")
        if not isinstance(name, str) or not STEP_NAME.match(name) or name == END:
            raise check.fail(
                "every step needs a name: lower-case letters, digits, _ or - (not 'end')",
                "steps",
                i,
                "name",
            )
        if name in names:
            raise check.fail(f"step name {name!r} is used twice", "steps", i, "name")
        names.append(name)
    steps: list[Step] = []
    for i, entry in enumerate(raw_steps):
        where: Where = ("steps", i)
        name = names[i]
        kinds = [k for k in ("wait", "mail", "if") if k in entry]
        if len(kinds) != 1:
            raise check.fail(f"step {name!r} needs exactly one of wait, mail or if", *where)
        kind = kinds[0]
        allowed = {"name", kind} | ({"then", "else"} if kind == "if" else set())
        check.only_keys(entry, allowed, where)
        if kind == "wait":
            steps.append(Step(name, "wait", wait=_wait(check, entry["wait"], where)))
        elif kind == "mail":
            mail = entry["mail"]
            if not isinstance(mail, str) or not STEP_NAME.match(mail):
                raise check.fail("mail must name a template in [mails]", *where, "mail")
            steps.append(Step(name, "mail", mail=mail))
        else:
            targets = []
            for key in ("then", "else"):
                target = entry.get(key)
                if target is None:
                    targets.append(i + 1)
                    continue
                if target == END:
                    targets.append(len(raw_steps))
                    continue
                if target not in names:
                    raise check.fail(f"{key}: no step named {target!r}", *where, key)
                if names.index(target) <= i:
                    raise check.fail(
                        f"{key}: a branch may only go forward (to a later step or 'end')",
                        *where,
                        key,
                    )
                targets.append(names.index(target))
            steps.append(
                Step(
                    name,
                    "branch",
                    condition=_condition(check, entry["if"], where),
                    then=targets[0],
                    otherwise=targets[1],
                )
            )
    for i, step in enumerate(steps):
        condition = step.condition
        if condition is not None and isinstance(condition.clicked, str):
            target = next((s for s in steps if s.name == condition.clicked), None)
            if target is None or target.kind != "mail" or steps.index(target) >= i:
                raise check.fail(
                    "clicked must name an earlier mail step (or be true)", "steps", i, "if"
                )
    return raw_steps, steps


def _body_line(check: _Checker, table: str, key: str) -> int:
    """The file line of a multi-line string's first line of content."""
    line = check.locator.line(table, None, key)
    text = check.locator.lines[line - 1] if line - 1 < len(check.locator.lines) else ""
    value = text.split("=", 1)[1].strip() if "=" in text else ""
    return line + 1 if value in {'"""', "'''"} else line


def _mails(
    check: _Checker,
    data: dict[str, Any],
    steps: list[Step],
    languages: tuple[str, ...],
    files: Mapping[str, str],
) -> dict[tuple[str, str], CompiledMail]:
    mails = data.get("mails", {})
    if not isinstance(mails, dict):
        raise check.fail("mails must be tables such as [mails.welcome.en]", "mails")
    used = {step.mail for step in steps if step.mail}
    for step_index, step in enumerate(steps):
        if step.mail and step.mail not in mails:
            raise check.fail(
                f"no template [mails.{step.mail}.{languages[0]}]", "steps", step_index, "mail"
            )
    compiled: dict[tuple[str, str], CompiledMail] = {}
    for name, per_language in mails.items():
        if name not in used:
            raise check.fail(f"mail {name!r} is not sent by any step", f"mails.{name}")
        if not isinstance(per_language, dict):
            raise check.fail(f"write [mails.{name}.en] and so on", f"mails.{name}")
        for lang in languages:
            if lang not in per_language:
                raise check.fail(
                    f"mail {name!r} has no {lang!r} version ([mails.{name}.{lang}])",
                    f"mails.{name}",
                )
        for lang, entry in per_language.items():
            table = f"mails.{name}.{lang}"
            if lang not in i18n.LANGUAGES:
                raise check.fail(f"unknown language {lang!r}", table)
            if not isinstance(entry, dict):
                raise check.fail(f"[{table}] must be a table", table)
            check.only_keys(entry, {"subject", "markdown", "file"}, (table, None))
            subject = entry.get("subject")
            if not isinstance(subject, str) or not subject.strip():
                raise check.fail("subject must be a non-empty text", table, None, "subject")
            if ("markdown" in entry) == ("file" in entry):
                raise check.fail("give the body as markdown = ... or file = ...", table)
            if "markdown" in entry:
                body = entry["markdown"]
                if not isinstance(body, str):
                    raise check.fail("markdown must be a text", table, None, "markdown")
                where_file, base = check.source, _body_line(check, table, "markdown")
            else:
                file_name = entry["file"]
                if (
                    not isinstance(file_name, str)
                    or not FILE_NAME.match(file_name)
                    or ".." in file_name
                ):
                    raise check.fail("file must be a relative file name", table, None, "file")
                if file_name not in files:
                    raise check.fail(f"template file {file_name!r} not found", table, None, "file")
                body, where_file, base = files[file_name], file_name, 1
            try:
                compiled[(name, lang)] = compile_mail(subject, body)
            except TemplateProblem as exc:
                if exc.line == 0:
                    raise check.fail(exc.message, table, None, "subject") from None
                raise SequenceError(f"{where_file}:{base + exc.line - 1}: {exc.message}") from None
    return compiled


def file_names(text: str) -> list[str]:
    """Template files a sequence file names (read them before calling ``parse``)."""
    try:
        data = tomlfile.loads(text, source="-", error=SequenceError)
    except SequenceError:
        return []
    names = []
    for per_language in (data.get("mails") or {}).values():
        if isinstance(per_language, dict):
            for entry in per_language.values():
                if isinstance(entry, dict) and isinstance(entry.get("file"), str):
                    names.append(entry["file"])
    return names


def parse(
    text: str,
    *,
    source: str = "sequence.toml",
    version: int = 0,
    files: Mapping[str, str] | None = None,
    known_purposes: Mapping[str, bool] | None = None,
) -> Sequence:
    """Parse and validate; raises SequenceError naming ``source`` (or a template file) and
    the line. ``known_purposes`` (purpose -> is marketing) checks the purpose when given."""
    data = tomlfile.loads(text, source=source, error=SequenceError)
    check = _Checker(text, source)
    for key in data:
        if key not in {"sequence", "trigger", "audience", "exit", "steps", "mails"}:
            raise check.fail(f"unknown section {key!r}", key)
    header = _header(check, data, known_purposes)
    trigger = _trigger(check, data, header["purpose"])
    audience = _audience(check, data)
    exit_ = _exit(check, data)
    _raw, steps = _steps(check, data)
    if not any(step.kind == "mail" for step in steps):
        raise check.fail("a sequence needs at least one mail step", "steps", 0)
    languages = header["languages"]
    if audience.languages is not None:
        languages = tuple(lang for lang in languages if lang in audience.languages)
    mails = _mails(check, data, steps, languages, files or {})
    return Sequence(
        key=header["key"],
        version=version,
        name=header["name"],
        purpose=header["purpose"],
        reentry=header["reentry"],
        trigger=trigger,
        audience=audience,
        exit=exit_,
        steps=tuple(steps),
        mails=mails,
        languages=languages,
    )
