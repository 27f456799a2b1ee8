"""The API's day fields (marshmallow) over :func:`leadvault.days.read`: a day as
2025-03-31 and nothing else (marshmallow's ``Date`` takes whatever
``date.fromisoformat`` takes: 20260101, 2026-W01-1), refused with the words of the
command line and the console. Apart from :mod:`leadvault.days` so that the command line
does not import marshmallow; here so that every package's schemas can use it (the
admin API's filters, scoring's absences).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from marshmallow import fields

from leadvault import days
from leadvault.i18n import N_

# "Not a valid date: " and the words of each problem (leadvault.days.WORDS), as message
# ids: leadvault.schema_messages.Schema translates them as they leave a schema.
MESSAGES = {
    days.Problem.FORM.value: N_("Not a valid date: write the date as YYYY-MM-DD, e.g. 2025-03-31."),
    days.Problem.CALENDAR.value: N_("Not a valid date: there is no such day in the calendar."),
    days.Problem.RANGE.value: N_("Not a valid date: a date lies between the years 1 and 9999."),
}


# What ends a moment's day: ISO 8601's "T" (or RFC 3339's lower-case "t" and blank).
_DAY_OF_MOMENT = re.compile(r"[Tt ]")


class Day(fields.Date):
    """A day as 2025-03-31 (documented as ``format: date``, RFC 3339's full-date)."""

    default_error_messages = {**MESSAGES, "invalid": MESSAGES[days.Problem.FORM.value]}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dt.date:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            return days.read(value)
        except days.BadDay as exc:
            raise self.make_error(exc.problem.value) from None


def check_day_part(field: fields.Field, value: Any) -> None:
    """The day of a moment (2025-03-31T08:00+02:00) read as :class:`Day` reads one, so
    that a moment's day is refused with the same words (``field`` makes the error); a
    wrong form is the field's own "invalid", which shows how a moment is written."""
    if not isinstance(value, str):
        return
    try:
        days.read(_DAY_OF_MOMENT.split(value, maxsplit=1)[0])
    except days.BadDay as exc:
        key = "invalid" if exc.problem is days.Problem.FORM else exc.problem.value
        raise field.make_error(key) from None
