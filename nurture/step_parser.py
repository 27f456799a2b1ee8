"""The steps of a sequence file ([[steps]]): waits, mails and branches on a condition,
checked with errors that name the file and line (``nurture.parser`` parses the rest).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from leadvault.tomlfile import Where
from nurture.definition import STAGE_RANK, WEEKDAYS, Condition, Step, Wait
from nurture.sequence_checks import EVENT, SequenceChecker, number_range, string_set

STEP_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,79}$")
_UNTIL = re.compile(r"^\s*(?:([a-z]+)\s+)?([01]?\d|2[0-3]):([0-5]\d)\s*$")
END = "end"


def _wait(check: SequenceChecker, raw: Any, where: Where) -> Wait:
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


def _condition(check: SequenceChecker, raw: Any, where: Where) -> Condition:
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
    low, high = number_range(check, raw, "score", where)
    stages = string_set(check, raw, "stage", where, tuple(STAGE_RANK))
    events = string_set(check, raw, "event", where)
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


def parse_steps(
    check: SequenceChecker, data: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[Step]]:
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
