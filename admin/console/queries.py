"""The console's lead list as a query string: the filters people choose, read and
checked with a message for the page, and turned into the one lead list service's
filters (:mod:`admin.leads`, which the API and ``leadvault leads list`` use too).

Query-string values stay as typed (dates as days) so that links can rebuild them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from admin import leads as lead_service
from leadvault import days, i18n
from leadvault.i18n import N_

PAGE_SIZE = 50
SORTS = lead_service.SORTS
GRADES = lead_service.GRADES
STAGES = lead_service.STAGES
TOUCHES = ("any", "first")


# What each date filter is called where the message names it (the form's labels).
DATE_LABELS = {"since": N_("Created from"), "until": N_("Created to")}


class FilterError(ValueError):
    """A filter value that cannot be used; the message id says which (shown as a 400).
    ``label`` names the field it is about (a message id), filled in as ``%(field)s``;
    ``other`` a second field the message names, as ``%(other)s``."""

    def __init__(self, message: str, label: str | None = None, *, other: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.label = label
        self.other = other  # a second field the message names (``%(other)s``)

    def text(self) -> str:
        """The message in the request's language, naming the field."""
        if self.label is None:
            return i18n.gettext(self.message)
        if self.other is None:
            return i18n.gettext(self.message, field=i18n.gettext(self.label))
        return i18n.gettext(
            self.message, field=i18n.gettext(self.label), other=i18n.gettext(self.other)
        )


class FilterErrors(ValueError):
    """The filters that cannot be used, by query argument; ``kept`` holds the others."""

    def __init__(self, errors: dict[str, FilterError], kept: Filters) -> None:
        super().__init__(next(iter(errors.values())).message)
        self.errors = errors
        self.kept = kept

    def texts(self) -> dict[str, str]:
        return {name: error.text() for name, error in self.errors.items()}


# The console's words for each of leadvault.days' problems (translated, naming the field).
_DAY_PROBLEMS = {
    days.Problem.FORM: N_("%(field)s: write the date as 2025-03-31."),
    days.Problem.CALENDAR: N_("%(field)s: there is no such day in the calendar."),
    days.Problem.RANGE: N_("%(field)s: a date lies between the years 1 and 9999."),
}
# A "to" day before its "from" day: the range holds no day (both days are included).
BEFORE_START = N_("%(field)s: this day lies before the one in “%(other)s”, so nothing can match.")


def read_day(raw: str | None, label: str) -> dt.date | None:
    """A day typed as 2025-03-31 (what an ``<input type=date>`` sends); blank is none.
    Read by :func:`leadvault.days.read`; a refusal names the field (``label``)."""
    if not (raw or "").strip():
        return None
    try:
        return days.read(raw or "")
    except days.BadDay as exc:
        raise FilterError(_DAY_PROBLEMS[exc.problem], label) from None


def check_span(since: dt.date | None, until: dt.date | None, labels: Mapping[str, str]) -> None:
    """Refuse an "until" day before the "since" day (both included), naming both fields
    (the error belongs to "until"): an empty list would look like no data, not a typo."""
    if days.empty_span(since, until, last_included=True):
        raise FilterError(BEFORE_START, labels["until"], other=labels["since"])


@dataclasses.dataclass(frozen=True)
class Filters:
    stage: str | None = None  # the stage a lead is in now
    reached: str | None = None  # a stage the lead reached at some time (the funnel's count)
    grade: str | None = None
    form: str | None = None  # public id
    utm_source: str | None = None
    touch: str | None = None  # "first": form and source of the first touch (the dashboard's)
    suspect: bool | None = None
    score_min: float | None = None
    score_max: float | None = None
    since: dt.date | None = None  # created on or after (UTC day)
    until: dt.date | None = None  # created on or before (UTC day)
    sort: str = "created"
    cursor: str | None = None

    def query_args(self, **changes: Any) -> dict[str, str]:
        """The filters as query-string arguments (for links), with ``changes`` applied."""
        values = dataclasses.asdict(dataclasses.replace(self, **changes))
        args: dict[str, str] = {}
        for name, value in values.items():
            if value is None or (name == "sort" and value == "created"):
                continue
            if isinstance(value, bool):
                args[name] = "1" if value else "0"
            else:
                args[name] = value.isoformat() if isinstance(value, dt.date) else str(value)
        return args

    @property
    def active(self) -> bool:
        return any(v is not None for k, v in dataclasses.asdict(self).items() if k != "sort")

    def service_filters(self, *, assigned_to: int | None) -> lead_service.Filters:
        """The lead service's filters; ``assigned_to`` limits the list to a salesperson's."""
        return lead_service.Filters(
            stages=(self.stage,) if self.stage else (),
            reached=self.reached,
            grades=(self.grade,) if self.grade else (),
            form=self.form,
            utm_source=self.utm_source,
            first_touch=self.touch == "first",
            suspect=self.suspect,
            score_min=self.score_min,
            score_max=self.score_max,
            created_from=days.start_of(self.since),
            created_to=days.end_of(self.until),  # the "to" day included
            assigned_to=assigned_to,
        )


def _text(args: Mapping[str, str], name: str, limit: int = 100) -> str | None:
    value = (args.get(name) or "").strip()
    if not value:
        return None
    if len(value) > limit or not value.isprintable():
        raise FilterError(N_("A filter value is too long."))
    return value


def _number(args: Mapping[str, str], name: str) -> float | None:
    value = _text(args, name, 20)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise FilterError(N_("The score must be a number.")) from None
    if math.isnan(number) or abs(number) > 1e9:  # absurd sizes
        raise FilterError(N_("The score must be a number."))
    return number


def _choice(args: Mapping[str, str], name: str, choices: Any, message: str) -> str | None:
    value = _text(args, name, 16)
    if value is not None and value not in choices:
        raise FilterError(message)
    return value


def _grade(args: Mapping[str, str]) -> str | None:
    grade = _text(args, "grade", 1)
    if grade is not None and grade.upper() not in GRADES:
        raise FilterError(N_("The grade must be A, B, C or D."))
    return grade.upper() if grade else None


def _suspect(args: Mapping[str, str]) -> bool | None:
    raw = _choice(args, "suspect", ("0", "1"), N_("The request could not be understood."))
    return None if raw is None else raw == "1"


def _sort(args: Mapping[str, str]) -> str:
    sort = _text(args, "sort", 10) or "created"
    if sort not in SORTS:
        raise FilterError(N_("The list can be sorted by date or by score."))
    return sort


def _cursor(args: Mapping[str, str], sort: str) -> str | None:
    cursor = _text(args, "cursor", 200)
    if cursor is not None:
        try:
            lead_service.check_cursor(cursor, sort)
        except lead_service.BadCursor:
            raise FilterError(N_("This page of the list no longer exists; start again.")) from None
    return cursor


def parse_filters(args: Mapping[str, str]) -> Filters:
    """Filters from a query string. Values that cannot be used raise
    :class:`FilterErrors`, which names each (by query argument) and keeps the others."""
    errors: dict[str, FilterError] = {}

    def read(name: str, reader: Any, *more: Any) -> Any:
        try:
            return reader(*more)
        except FilterError as exc:
            errors[name] = exc
            return None

    stage_message = N_("There is no such stage.")
    not_understood = N_("The request could not be understood.")
    touch = read("touch", _choice, args, "touch", TOUCHES, not_understood)
    sort = read("sort", _sort, args) or "created"
    filters = Filters(
        stage=read("stage", _choice, args, "stage", STAGES, stage_message),
        reached=read("reached", _choice, args, "reached", STAGES, stage_message),
        grade=read("grade", _grade, args),
        form=read("form", _text, args, "form", 32),
        utm_source=read("utm_source", _text, args, "utm_source"),
        touch=None if touch == "any" else touch,
        suspect=read("suspect", _suspect, args),
        score_min=read("score_min", _number, args, "score_min"),
        score_max=read("score_max", _number, args, "score_max"),
        since=read("since", read_day, args.get("since"), DATE_LABELS["since"]),
        until=read("until", read_day, args.get("until"), DATE_LABELS["until"]),
        sort=sort,
        cursor=None if "sort" in errors else read("cursor", _cursor, args, sort),
    )
    if "until" not in errors:
        read("until", check_span, filters.since, filters.until, DATE_LABELS)
    if errors:
        raise FilterErrors(errors, filters)
    return filters
