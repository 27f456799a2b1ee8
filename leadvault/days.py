"""One way to read a day that people or scripts type (a date filter, an absence): ASCII
digits as YYYY-MM-DD, nothing else. ``date.fromisoformat`` alone also takes 20260101,
2026-W01-1 and (through marshmallow or click) other spellings, so the console, the API
and the command line each answered a different set; they are now thin adapters over
:func:`read` (the console's messages translated and naming the field, the API's 422,
the command's exit 2 naming the option).

A refusal says which of three things is wrong, because each needs a different fix:
the form (2026-1-1, 31.12.2025, full-width digits), a day the calendar lacks
(2026-02-30), or a year outside 1 to 9999 (what Python's dates and ``<input type=date>``
hold).

:func:`empty_span` is the one test of a from/to pair: a range that can hold nothing is
a mistake to name, not an empty result to show.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from typing import Any

_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Written as a day, but with a year no date can hold (five digits or more, or year 0).
_OUT_OF_RANGE = re.compile(r"(?:[0-9]{5,}|0000)-[0-9]{2}-[0-9]{2}")


class Problem(enum.Enum):
    FORM = "form"
    CALENDAR = "calendar"
    RANGE = "range"


# The English words for each (the command line's and the API's; the console has its own
# message ids, translated and naming the field).
WORDS = {
    Problem.FORM: "write the date as YYYY-MM-DD, e.g. 2025-03-31",
    Problem.CALENDAR: "there is no such day in the calendar",
    Problem.RANGE: "a date lies between the years 1 and 9999",
}


class BadDay(ValueError):
    """A day that cannot be read; ``problem`` says which of the three things is wrong."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(WORDS[problem])
        self.problem = problem

    @property
    def words(self) -> str:
        return WORDS[self.problem]


def read(text: str) -> dt.date:
    """The day ``text`` names, written as 2025-03-31 (surrounding blanks ignored)."""
    value = text.strip()
    if not value.isascii():  # full-width or other non-ASCII digits
        raise BadDay(Problem.FORM)
    if _OUT_OF_RANGE.fullmatch(value):
        raise BadDay(Problem.RANGE)
    if not _DAY.fullmatch(value):
        raise BadDay(Problem.FORM)
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise BadDay(Problem.CALENDAR) from None


def empty_span(first: Any, last: Any, *, last_included: bool) -> bool:
    """Whether from ``first`` to ``last`` (days or moments) nothing can lie: ``last``
    before ``first``, or equal to it when ``last`` itself is excluded. Either may be
    None (no bound), which is never empty."""
    if first is None or last is None:
        return False
    return bool(last < first if last_included else last <= first)


def start_of(day: dt.date | None) -> dt.datetime | None:
    """The first moment (UTC) of ``day``: where a "from" day starts."""
    return dt.datetime.combine(day, dt.time(), dt.UTC) if day is not None else None


def end_of(day: dt.date | None) -> dt.datetime | None:
    """The first moment (UTC) after ``day``: the exclusive bound of an inclusive "to"
    day. The calendar's last day has no next one: nothing lies after it (no bound)."""
    if day is None or day >= dt.date.max:
        return None
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
