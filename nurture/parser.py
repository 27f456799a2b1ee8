"""Sequence files: parse and validate the TOML, with errors that name the file and line.

The format is described in ``nurture/sequence.example.toml``. Mail templates
are written inline (``markdown = \"\"\"…\"\"\"``) or in files next to the sequence
(``file = "welcome.de.md"``), which are stored with each version.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from leadvault import i18n, tomlfile, untrusted
from leadvault.tomlfile import Where
from nurture.definition import STAGE_RANK, TRIGGERS, Audience, Exit, Sequence, Step, Trigger
from nurture.render import CompiledMail, TemplateProblem, compile_mail
from nurture.sequence_checks import (
    EVENT,
    SequenceChecker,
    SequenceError,
    number_range,
    stage_name,
    string_set,
)
from nurture.step_parser import parse_steps

KEY = re.compile(r"^[a-z][a-z0-9_\-]{0,31}$")
FILE_NAME = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-/]{0,200}$")
GRADES = ("A", "B", "C", "D")

__all__ = ["SequenceError", "file_names", "parse"]


# --- sections -------------------------------------------------------------------------


def _header(
    check: SequenceChecker,
    data: dict[str, Any],
    known_purposes: Mapping[str, bool] | None,
    stored: bool,
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
    if not stored and (char := untrusted.one_line_refused(name)) is not None:
        raise check.fail(_control("name", char), *where, "name")
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
    languages = string_set(check, table, "languages", where, i18n.LANGUAGES)
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


def _trigger(check: SequenceChecker, data: dict[str, Any], purpose: str) -> Trigger:
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
        fields["stage"] = stage_name(check, fields["stage"], where, "stage")
    if on == "event" and not (fields["event"] and EVENT.match(fields["event"])):
        raise check.fail("event must name an event type (lower-case, digits, _)", *where, "event")
    return Trigger(on=on, **fields)


def _audience(check: SequenceChecker, data: dict[str, Any]) -> Audience:
    table = data.get("audience", {})
    where: Where = ("audience", None)
    if not isinstance(table, dict):
        raise check.fail("audience must be a table", "audience")
    check.only_keys(table, {"grade", "score", "form", "language"}, where)
    low, high = number_range(check, table, "score", where)
    return Audience(
        grades=string_set(check, table, "grade", where, GRADES),
        score_min=low,
        score_max=high,
        forms=string_set(check, table, "form", where),
        languages=string_set(check, table, "language", where, i18n.LANGUAGES),
    )


def _exit(check: SequenceChecker, data: dict[str, Any]) -> Exit:
    table = data.get("exit", {})
    where: Where = ("exit", None)
    if not isinstance(table, dict):
        raise check.fail("exit must be a table", "exit")
    check.only_keys(table, {"stage", "handoff", "goal_events"}, where)
    stage = table.get("stage", "sal")
    if stage is not False:
        stage = stage_name(check, stage, where, "stage")
        if STAGE_RANK[stage] == 0:
            raise check.fail("stage must be mql or later (or false)", *where, "stage")
    handoff = table.get("handoff", "accepted")
    if handoff not in {"offered", "accepted", False}:
        raise check.fail('handoff must be "offered", "accepted" or false', *where, "handoff")
    goals = table.get("goal_events", [])
    if not isinstance(goals, list) or not all(isinstance(g, str) and EVENT.match(g) for g in goals):
        raise check.fail("goal_events must be a list of event type names", *where, "goal_events")
    return Exit(stage=stage or None, handoff=handoff or None, goal_events=tuple(goals))


def _body_line(check: SequenceChecker, table: str, key: str) -> int:
    """The file line of a multi-line string's first line of content."""
    line = check.locator.line(table, None, key)
    text = check.locator.lines[line - 1] if line - 1 < len(check.locator.lines) else ""
    value = text.split("=", 1)[1].strip() if "=" in text else ""
    return line + 1 if value in {'"""', "'''"} else line


def _mails(
    check: SequenceChecker,
    data: dict[str, Any],
    steps: list[Step],
    languages: tuple[str, ...],
    files: Mapping[str, str],
    *,
    stored: bool,
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
            # A line break in a subject is a header the mail cannot have: the worker
            # would fail on every mail of the step (and NUL is no text PostgreSQL keeps).
            if not stored and (char := untrusted.one_line_refused(subject)) is not None:
                raise check.fail(_control("subject", char), table, None, "subject")
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
            if not stored and (char := untrusted.staff_text_character(body)) is not None:
                line = base + body[: body.index(char)].count("\n")
                problem = _control("the mail", char, one_line=False)
                raise SequenceError(f"{where_file}:{line}: {problem}")
            try:
                compiled[(name, lang)] = compile_mail(subject, body)
            except TemplateProblem as exc:
                if exc.line == 0:
                    raise check.fail(exc.message, table, None, "subject") from None
                raise SequenceError(f"{where_file}:{base + exc.line - 1}: {exc.message}") from None
    return compiled


def _control(what: str, char: str, *, one_line: bool = True) -> str:
    """Why a text with a control character (or a bidi override) is refused."""
    if one_line:
        return f"{what} holds the control character U+{ord(char):04X}; give it on one line"
    return f"{what} holds the control character U+{ord(char):04X} (an escape or direction mark)"


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
    stored: bool = False,
) -> Sequence:
    """Parse and validate; raises SequenceError naming ``source`` (or a template file) and
    the line. ``known_purposes`` (purpose -> is marketing) checks the purpose when given.
    ``stored``: a version read back, loaded perhaps before its texts were checked for
    control characters; it still reads (the active set must not fail for one of them)."""
    data = tomlfile.loads(text, source=source, error=SequenceError)
    check = SequenceChecker(text, source)
    for key in data:
        if key not in {"sequence", "trigger", "audience", "exit", "steps", "mails"}:
            raise check.fail(f"unknown section {key!r}", key)
    header = _header(check, data, known_purposes, stored)
    trigger = _trigger(check, data, header["purpose"])
    audience = _audience(check, data)
    exit_ = _exit(check, data)
    _raw, steps = parse_steps(check, data)
    if not any(step.kind == "mail" for step in steps):
        raise check.fail("a sequence needs at least one mail step", "steps", 0)
    languages = header["languages"]
    if audience.languages is not None:
        languages = tuple(lang for lang in languages if lang in audience.languages)
    mails = _mails(check, data, steps, languages, files or {}, stored=stored)
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
