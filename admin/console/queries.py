"""The console's lead list: filters from the query string, one page of pseudonymous rows.

A page is one bounded query (``LIMIT page + 1``, keyset paging on the sort
key and the lead's id), so it costs the same on page 1 and page 2000. Rows
carry no personal data: a short reference, dates, form, source, stage, grade
and score; a lead's decrypted details are one audited request on its page.
A salesperson's account sees only the leads offered or handed to it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from capture.models import Form
from leadvault.i18n import N_
from leadvault.models import Lead
from scoring.models import Handoff, HandoffStatus, LeadScore, Stage, StageChange

PAGE_SIZE = 50
SORTS = ("created", "score")
GRADES = ("A", "B", "C", "D")
STAGES = tuple(stage.value for stage in Stage)
# Handoffs through which a salesperson "has" a lead.
HANDED = (HandoffStatus.OFFERED.value, HandoffStatus.ACCEPTED.value)


class FilterError(ValueError):
    """A filter value that cannot be used; the message id says which (shown as a 400)."""


@dataclasses.dataclass(frozen=True)
class Filters:
    stage: str | None = None  # the stage a lead is in now
    reached: str | None = None  # a stage the lead reached at some time (the funnel's count)
    grade: str | None = None
    form: str | None = None  # first form, public id
    utm_source: str | None = None
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


def _text(args: Mapping[str, str], name: str, limit: int = 100) -> str | None:
    value = (args.get(name) or "").strip()
    if not value:
        return None
    if len(value) > limit:
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
    sort = _text(args, "sort", 10) or "created"
    if sort not in SORTS:
        raise FilterError(N_("The list can be sorted by date or by score."))
    cursor = _text(args, "cursor", 80)
    if cursor is not None:
        _decode_cursor(cursor, sort)
    return Filters(
        stage=stage,
        reached=reached,
        grade=grade.upper() if grade else None,
        form=_text(args, "form", 32),
        utm_source=_text(args, "utm_source"),
        suspect=None if suspect_raw is None else suspect_raw == "1",
        score_min=_number(args, "score_min"),
        score_max=_number(args, "score_max"),
        since=_date(args, "since"),
        until=_date(args, "until"),
        sort=sort,
        cursor=cursor,
    )


def _decode_cursor(cursor: str, sort: str) -> tuple[Any, uuid.UUID]:
    """``<sort key>~<lead id>``: the last row of the previous page."""
    key, _, lead = cursor.partition("~")
    try:
        value: Any = float(key) if sort == "score" else dt.datetime.fromisoformat(key)
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            raise ValueError(key)
        return value, uuid.UUID(lead)
    except ValueError:
        raise FilterError(N_("This page of the list no longer exists; start again.")) from None


@dataclasses.dataclass(frozen=True)
class Row:
    id: uuid.UUID
    created_at: dt.datetime
    form: str | None
    form_name: str | None
    utm_source: str | None
    stage: str
    grade: str
    score: float
    suspect: bool

    @property
    def reference(self) -> str:
        return self.id.hex[:8]


@dataclasses.dataclass(frozen=True)
class Page:
    rows: list[Row]
    next_cursor: str | None


def _visible(query: sa.Select[Any], salesperson_id: int | None, sales_only: bool) -> sa.Select[Any]:
    if not sales_only:
        return query
    if salesperson_id is None:
        return query.where(sa.false())
    handed = sa.exists().where(
        Handoff.lead_id == Lead.id,
        Handoff.person_id == salesperson_id,
        Handoff.status.in_(HANDED),
    )
    return query.where(handed)


def visible_to(
    session: Session, lead_id: uuid.UUID, *, salesperson_id: int | None, sales_only: bool
) -> bool:
    query = _visible(sa.select(Lead.id).where(Lead.id == lead_id), salesperson_id, sales_only)
    return session.scalar(query) is not None


def _filtered(
    query: sa.Select[Any], filters: Filters, *, stage: Any, grade: Any, score: Any, suspect: Any
) -> sa.Select[Any]:
    if filters.stage:
        query = query.where(stage == filters.stage)
    if filters.reached and filters.reached != Stage.NEW:
        query = query.where(
            sa.exists().where(
                StageChange.lead_id == Lead.id, StageChange.to_stage == filters.reached
            )
        )
    if filters.grade:
        query = query.where(grade == filters.grade)
    if filters.form:
        query = query.where(LeadScore.first_form == filters.form)
    if filters.utm_source:
        column = sa.func.coalesce(LeadScore.utm_source, "-")
        query = query.where(column == filters.utm_source)
    if filters.suspect is not None:
        query = query.where(suspect == filters.suspect)
    if filters.score_min is not None:
        query = query.where(score >= filters.score_min)
    if filters.score_max is not None:
        query = query.where(score <= filters.score_max)
    if filters.since:
        start = dt.datetime.combine(filters.since, dt.time(), dt.UTC)
        query = query.where(Lead.created_at >= start)
    if filters.until:
        end = dt.datetime.combine(filters.until + dt.timedelta(days=1), dt.time(), dt.UTC)
        query = query.where(Lead.created_at < end)
    return query


def page(
    session: Session,
    filters: Filters,
    *,
    salesperson_id: int | None = None,
    sales_only: bool = False,
    size: int = PAGE_SIZE,
) -> Page:
    """One page of leads matching ``filters``, newest (or highest score) first.

    Sorted by date the query walks ``leads`` by its ``created_at`` index; sorted by
    score it walks ``lead_scores`` by its ``score`` index (a lead that scoring has
    not seen yet has no score and is left out of that order).
    """
    by_score = filters.sort == "score"
    if by_score:
        stage: Any = LeadScore.stage
        grade: Any = LeadScore.fit_grade
        score: Any = LeadScore.score
        suspect: Any = LeadScore.suspect
    else:
        stage = sa.func.coalesce(LeadScore.stage, Stage.NEW.value)
        grade = sa.func.coalesce(LeadScore.fit_grade, "D")
        score = sa.func.coalesce(LeadScore.score, 0.0)
        suspect = sa.func.coalesce(LeadScore.suspect, sa.false())
    query = sa.select(
        Lead.id,
        Lead.created_at,
        LeadScore.first_form,
        Form.name,
        LeadScore.utm_source,
        stage,
        grade,
        score,
        suspect,
    )
    if by_score:
        query = query.select_from(LeadScore).join(Lead, Lead.id == LeadScore.lead_id)
    else:
        query = query.select_from(Lead).outerjoin(LeadScore, LeadScore.lead_id == Lead.id)
    query = query.outerjoin(Form, Form.public_id == LeadScore.first_form)
    query = _visible(query, salesperson_id, sales_only)
    query = _filtered(query, filters, stage=stage, grade=grade, score=score, suspect=suspect)
    key: Any = LeadScore.score if by_score else Lead.created_at
    tie: Any = LeadScore.lead_id if by_score else Lead.id
    if filters.cursor:
        value, last_id = _decode_cursor(filters.cursor, filters.sort)
        # ``key <= value`` first, so the index bounds the walk.
        query = query.where(key <= value, sa.or_(key < value, tie < last_id))
    query = query.order_by(key.desc(), tie.desc()).limit(size + 1)
    rows = [Row(*row) for row in session.execute(query)]
    more = len(rows) > size
    rows = rows[:size]
    cursor = None
    if more and rows:
        last = rows[-1]
        value = repr(float(last.score)) if filters.sort == "score" else last.created_at.isoformat()
        cursor = f"{value}~{last.id}"
    return Page(rows, cursor)


def forms(session: Session) -> list[tuple[str, str]]:
    """(public id, name) of every form, for the filter's choices."""
    return [
        (public_id, name)
        for public_id, name in session.execute(
            sa.select(Form.public_id, Form.name).order_by(Form.name)
        )
    ]
