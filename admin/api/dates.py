"""The admin API's days and moments: fields over :mod:`leadvault.days` (what the console
and the command line read as a day, the API reads as one) and the one refusal of a
from/to pair that holds nothing. Messages are ids (leadvault.schema_messages.Schema
translates them as they leave a schema)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from marshmallow import ValidationError, fields

from leadvault import day_fields, days
from leadvault.i18n import N_


def day_field(**options: Any) -> fields.Date:
    """A day as 2025-03-31 (:mod:`leadvault.days`); a wrong one is refused saying what
    is wrong: the form, a day the calendar lacks, a year outside 1 to 9999."""
    return day_fields.Day(**options)


class UtcDateTime(fields.AwareDateTime):
    """An ISO 8601 moment (UTC without an offset), as UTC; its day written as
    :mod:`leadvault.days` reads one (a day alone is its midnight). Near the calendar's
    ends an offset can point past them (0001-01-01T00:00+01:00 is in year 0 in UTC),
    which Python's datetime cannot hold: a 422 naming the field, not an overflow."""

    default_error_messages = {  # marshmallow merges it with the parent's
        **day_fields.MESSAGES,
        "invalid": N_(
            "Not a valid date and time: write it as 2025-03-31 or "
            "2025-03-31T08:00:00+02:00 (years 1 to 9999)."
        ),
        "utc_range": N_("Lies outside the years 1 to 9999 in UTC."),
    }

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dt.datetime:
        day_fields.check_day_part(self, value)
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(dt.UTC)
        except OverflowError:
            raise self.make_error("utc_range") from None


# What a range that holds nothing is told, by its pair of fields: an exclusive "to"
# must lie after "from", an inclusive one not before it.
_EMPTY = {
    ("created_from", "created_to"): N_(
        "created_to must lie after created_from (created_to is exclusive: it is left out)."
    ),
    ("since", "until"): N_("until lies before since: no day lies between them."),
}


def refuse_empty_span(data: dict[str, Any], first: str, last: str, *, last_included: bool) -> None:
    """A 422 on ``last`` naming both fields when the range from ``first`` to ``last``
    holds nothing: an empty answer would look like no data rather than a mistake."""
    if days.empty_span(data.get(first), data.get(last), last_included=last_included):
        raise ValidationError(_EMPTY[first, last], last)
