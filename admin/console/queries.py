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
from leadvault.i18n import N_

PAGE_SIZE = 50
SORTS = lead_service.SORTS
GRADES = lead_service.GRADES
STAGES = lead_service.STAGES
TOUCHES = ("any", "first")


class FilterError(ValueError):
    """A filter value that cannot be used; the message id says which (shown as a 400)."""


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


def _date(args: Mapping[str, str], name: str) -> dt.date | None:
    value = _text(args, name, 10)
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise FilterError(N_("A date must look like 2025-03-31.")) from None


def parse_filters(args: Mapping[str, str]) -> Filters:
    """Filters from a query string; unknown values raise :class:`FilterError`."""
    stage = _text(args, "stage", 16)
    if stage is not None and stage not in STAGES:
        raise FilterError(N_("There is no such stage."))
    reached = _text(args, "reached", 16)
    if reached is not None and reached not in STAGES:
        raise FilterError(N_("There is no such stage."))
    grade = _text(args, "grade", 1)
    if grade is not None and grade.upper() not in GRADES:
        raise FilterError(N_("The grade must be A, B, C or D."))
    suspect_raw = _text(args, "suspect", 1)
    if suspect_raw not in (None, "0", "1"):
        raise FilterError(N_("The request could not be understood."))
    touch = _text(args, "touch", 5)
    if touch not in (None, *TOUCHES):
        raise FilterError(N_("The request could not be understood."))
    sort = _text(args, "sort", 10) or "created"
    if sort not in SORTS:
        raise FilterError(N_("The list can be sorted by date or by score."))
    cursor = _text(args, "cursor", 200)
    if cursor is not None:
        try:
            lead_service.check_cursor(cursor, sort)
        except lead_service.BadCursor:
            raise FilterError(N_("This page of the list no longer exists; start again.")) from None
    return Filters(
        stage=stage,
        reached=reached,
        grade=grade.upper() if grade else None,
        form=_text(args, "form", 32),
        utm_source=_text(args, "utm_source"),
        touch=None if touch == "any" else touch,
        suspect=None if suspect_raw is None else suspect_raw == "1",
        score_min=_number(args, "score_min"),
        score_max=_number(args, "score_max"),
        since=_date(args, "since"),
        until=_date(args, "until"),
        sort=sort,
        cursor=cursor,
    )
