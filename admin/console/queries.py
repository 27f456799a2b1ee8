"""The console's lead list as a query string: the filters people choose, read and
checked with a message for the page, and turned into the one lead list service's
filters (:mod:`admin.leads`, which the API and ``leadvault leads list`` use too).

Query-string values stay as typed (dates as days) so that links can rebuild them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any

from admin import leads as lead_service
from leadvault import i18n
from leadvault.i18n import N_

PAGE_SIZE = 50
SORTS = lead_service.SORTS
GRADES = lead_service.GRADES
STAGES = lead_service.STAGES
TOUCHES = ("any", "first")


# What each date filter is called where the message names it (the form's labels).
DATE_LABELS = {"since": N_("Created from"), "until": N_("Created to")}
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_LATE_DAY = re.compile(r"[0-9]{5,}-[0-9]{2}-[0-9]{2}")


class FilterError(ValueError):
    """A filter value that cannot be used; the message id says which (shown as a 400).
    ``label`` names the field it is about (a message id), filled in as ``%(field)s``."""

    def __init__(self, message: str, label: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.label = label

    def text(self) -> str:
        """The message in the request's language, naming the field."""
        if self.label is None:
            return i18n.gettext(self.message)
        return i18n.gettext(self.message, field=i18n.gettext(self.label))


class FilterErrors(ValueError):
    """The filters that cannot be used, by query argument; ``kept`` holds the others."""

    def __init__(self, errors: dict[str, FilterError], kept: Filters) -> None:
        super().__init__(next(iter(errors.values())).message)
        self.errors = errors
        self.kept = kept

    def texts(self) -> dict[str, str]:
        return {name: error.text() for name, error in self.errors.items()}


def read_day(raw: str | None, label: str) -> dt.date | None:
    """A day typed as 2025-03-31 (what an ``<input type=date>`` sends); blank is none.
    Refusals name the field (``label``) and say what is wrong: the form, a day the
    calendar lacks (2026-02-30), or a year outside 1 to 9999 (Python's and the form's)."""
    value = (raw or "").strip()
    if not value:
        return None
    if value.isascii() and (_LATE_DAY.fullmatch(value) or value.startswith("0000-")):
        raise FilterError(N_("%(field)s: a date lies between the years 1 and 9999."), label)
    if not value.isascii() or len(value) > 10:  # full-width digits too
        raise FilterError(N_("%(field)s: write the date as 2025-03-31."), label)
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        if _DAY.fullmatch(value):
            no_such_day = N_("%(field)s: there is no such day in the calendar.")
            raise FilterError(no_such_day, label) from None
        raise FilterError(N_("%(field)s: write the date as 2025-03-31."), label) from None


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
        since = dt.datetime.combine(self.since, dt.time(), dt.UTC) if self.since else None
        until = (  # the calendar's last day has no next one: nothing lies after it
            dt.datetime.combine(self.until + dt.timedelta(days=1), dt.time(), dt.UTC)
            if self.until and self.until < dt.date.max
            else None
        )
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
            created_from=since,
            created_to=until,
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
    if errors:
        raise FilterErrors(errors, filters)
    return filters
