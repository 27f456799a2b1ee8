"""What every section of a sequence file is checked with: the checker whose errors name the
file and line (:class:`SequenceError`), and the values sections share (a string or a
list of strings, a min/max range, a stage, an event type's name). ``nurture.parser``
and ``nurture.step_parser`` use these.
"""

from __future__ import annotations

import re
from typing import Any

from leadvault import tomlfile
from leadvault.tomlfile import Where
from nurture.definition import STAGE_RANK

EVENT = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class SequenceError(tomlfile.SourceError):
    """A sequence file the service refuses; the message names file and line."""


class SequenceChecker(tomlfile.Checker):
    def __init__(self, text: str, source: str) -> None:
        super().__init__(text, source, SequenceError)


def string_set(
    check: SequenceChecker,
    table: dict[str, Any],
    key: str,
    where: Where,
    allowed: tuple[str, ...] = (),
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


def number_range(
    check: SequenceChecker, table: dict[str, Any], key: str, where: Where
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


def stage_name(check: SequenceChecker, value: Any, where: Where, key: str) -> str:
    if not isinstance(value, str) or value not in STAGE_RANK:
        raise check.fail(f"{key} must be one of {', '.join(STAGE_RANK)}", *where, key)
    return value
