"""The lead list for staff: filters, one page at a time by a keyset cursor, pseudonymous
rows (no personal data), and the same selection for an export of the list's leads.
The API, ``leadvault leads list`` and the console use these (through ``admin.leads``).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import math
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from capture.models import Form, Submission
from consent.models import Consent
from leadvault import clock
from leadvault.models import Lead
from leadvault.refusals import RefusedRequest
from scoring import rules as scoring_rules
from scoring import scores
from scoring.models import Handoff, HandoffStatus, LeadScore, Stage, StageChange

MAX_PAGE = 100
GRADES = ("A", "B", "C", "D")
STAGES = tuple(stage.value for stage in Stage)
PURPOSE_STATES = ("none", "pending", "granted", "withdrawn")
SORTS = ("created", "score")
NO_SOURCE = "-"  # with first_touch: the leads whose first touch had no such value
# Handoffs that put a lead in a salesperson's hands.
_ASSIGNED = (HandoffStatus.OFFERED, HandoffStatus.ACCEPTED)


class LeadError(RefusedRequest, ValueError):
    """A request the service refuses; the message is for the person."""


class BadCursor(LeadError):
    pass


@dataclasses.dataclass(frozen=True)
class Filters:
    """What the API, ``leadvault leads list`` and the console's list filter by."""

    stages: tuple[str, ...] = ()  # the stage a lead is in now
    reached: str | None = None  # a stage the lead reached at some time (the funnel's count)
    grades: tuple[str, ...] = ()
    form: str | None = None  # a form's public id
    utm_source: str | None = None
    utm_campaign: str | None = None
    # False: form and UTM values match any submission of the lead; True: only its first
    # touch, as scoring recorded it (the dashboard's attribution; NO_SOURCE for none).
    first_touch: bool = False
    purpose: str | None = None
    purpose_state: str | None = None  # with purpose
    suspect: bool | None = None
    score_min: float | None = None
    score_max: float | None = None
    created_from: dt.datetime | None = None
    created_to: dt.datetime | None = None  # exclusive
    # Sales: only the leads offered to or accepted by this salesperson.
    assigned_to: int | None = None


@dataclasses.dataclass(frozen=True)
class LeadRow:
    id: uuid.UUID
    created_at: dt.datetime
    language: str
    stage: str
    grade: str
    score: float  # decayed to now
    suspect: bool
    first_form: str | None
    first_form_name: str | None
    utm_source: str | None
    utm_campaign: str | None
    consents: dict[str, str]
    stored_score: float  # as scoring last wrote it: the score order and its cursor

    @property
    def reference(self) -> str:
        """A short handle for people (the id's first eight hex digits)."""
        return self.id.hex[:8]


def _encode_cursor(sort: str, row: LeadRow) -> str:
    value = repr(row.stored_score) if sort == "score" else row.created_at.isoformat()
    raw = f"{sort}|{value}|{row.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str) -> tuple[Any, uuid.UUID]:
    """The sort key and id of the last row of the previous page."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        made_for, value, ident = raw.split("|")
        if made_for != sort:
            raise ValueError("another order")
        key: Any
        if sort == "score":
            key = float(value)
            if not math.isfinite(key):
                raise ValueError("not finite")
        else:
            key = dt.datetime.fromisoformat(value)
            if key.tzinfo is None:
                raise ValueError("naive")
        return key, uuid.UUID(ident)
    except (ValueError, UnicodeDecodeError):
        raise BadCursor("this cursor is not one this list gave out") from None


def check_cursor(cursor: str, sort: str = "created") -> None:
    """Raise :class:`BadCursor` unless ``cursor`` continues a list in this order."""
    _decode_cursor(cursor, sort)


def assigned_ids(salesperson_id: int) -> sa.Select[Any]:
    return sa.select(Handoff.lead_id).where(
        Handoff.person_id == salesperson_id, Handoff.status.in_(list(_ASSIGNED))
    )


def _touched(filters: Filters) -> list[Any]:
    """Form and UTM conditions: on the first touch, or on any submission."""
    if filters.first_touch:
        conditions = []
        for value, column in (
            (filters.form, LeadScore.first_form),
            (filters.utm_source, LeadScore.utm_source),
            (filters.utm_campaign, LeadScore.utm_campaign),
        ):
            if value == NO_SOURCE:
                conditions.append(column.is_(None))
            elif value:
                conditions.append(column == value)
        return conditions
    submitted = []
    if filters.form:
        submitted.append(
            Submission.form_id
            == sa.select(Form.id).where(Form.public_id == filters.form).scalar_subquery()
        )
    if filters.utm_source:
        submitted.append(Submission.utm_source == filters.utm_source)
    if filters.utm_campaign:
        submitted.append(Submission.utm_campaign == filters.utm_campaign)
    if not submitted:
        return []
    return [sa.exists(sa.select(Submission.id).where(Submission.lead_id == Lead.id, *submitted))]


def _consented(filters: Filters) -> list[Any]:
    if not filters.purpose:
        return []
    state = filters.purpose_state
    of_purpose = (Consent.lead_id == Lead.id, Consent.purpose == filters.purpose)
    if state in (None, "none"):
        has = sa.exists(sa.select(Consent.lead_id).where(*of_purpose, Consent.status != "none"))
        return [~has if state == "none" else has]
    return [sa.exists(sa.select(Consent.lead_id).where(*of_purpose, Consent.status == state))]


def _conditions(filters: Filters, state: _StateColumns) -> list[Any]:
    conditions: list[Any] = []
    if filters.stages:
        conditions.append(state.stage.in_(filters.stages))
    if filters.reached and filters.reached != Stage.NEW.value:
        conditions.append(
            sa.exists().where(
                StageChange.lead_id == Lead.id, StageChange.to_stage == filters.reached
            )
        )
    if filters.grades:
        conditions.append(state.grade.in_(filters.grades))
    if filters.suspect is not None:
        conditions.append(state.suspect == filters.suspect)
    if filters.score_min is not None:
        conditions.append(state.score >= filters.score_min)
    if filters.score_max is not None:
        conditions.append(state.score <= filters.score_max)
    if filters.created_from is not None:
        conditions.append(Lead.created_at >= filters.created_from)
    if filters.created_to is not None:
        conditions.append(Lead.created_at < filters.created_to)
    conditions += _touched(filters)
    conditions += _consented(filters)
    if filters.assigned_to is not None:
        conditions.append(
            sa.exists().where(
                Handoff.lead_id == Lead.id,
                Handoff.person_id == filters.assigned_to,
                Handoff.status.in_(list(_ASSIGNED)),
            )
        )
    return conditions


@dataclasses.dataclass(frozen=True)
class _StateColumns:
    """A lead's scoring state as the query reads it."""

    stage: Any
    grade: Any
    score: Any
    suspect: Any

    @classmethod
    def of(cls, *, scored_only: bool) -> _StateColumns:
        if scored_only:  # inner join: the columns as they are, so the index serves
            return cls(LeadScore.stage, LeadScore.fit_grade, LeadScore.score, LeadScore.suspect)
        return cls(
            sa.func.coalesce(LeadScore.stage, Stage.NEW.value),
            sa.func.coalesce(LeadScore.fit_grade, "D"),
            sa.func.coalesce(LeadScore.score, 0.0),
            sa.func.coalesce(LeadScore.suspect, sa.false()),
        )


def list_leads(
    session: Session,
    filters: Filters,
    *,
    sort: str = "created",
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[LeadRow], str | None]:
    """One page of leads matching ``filters``, at most ``limit`` (≤ 100), newest first
    (``sort="created"``) or highest score first (``"score"``); the second value is the
    cursor of the next page, or None.

    One bounded query (``LIMIT limit + 1``, keyset on the sort key and the id), so
    page 2000 costs what page 1 costs: by date it walks ``leads.created_at``'s index,
    by score ``lead_scores.score``'s (a lead scoring has not seen yet has no score
    and is left out of that order). Rows carry no personal data.
    """
    if sort not in SORTS:
        raise LeadError("sort by created or score")
    limit = max(1, min(limit, MAX_PAGE))
    by_score = sort == "score"
    state = _StateColumns.of(scored_only=by_score)
    query = sa.select(
        Lead.id,
        Lead.created_at,
        Lead.language,
        state.stage,
        state.grade,
        state.score,
        state.suspect,
        LeadScore.first_form,
        Form.name,
        LeadScore.utm_source,
        LeadScore.utm_campaign,
        LeadScore.as_of,
    )
    if by_score:
        query = query.select_from(LeadScore).join(Lead, Lead.id == LeadScore.lead_id)
    else:
        query = query.select_from(Lead).outerjoin(LeadScore, LeadScore.lead_id == Lead.id)
    query = query.outerjoin(Form, Form.public_id == LeadScore.first_form)
    query = query.where(*_conditions(filters, state))
    key: Any = LeadScore.score if by_score else Lead.created_at
    tie: Any = LeadScore.lead_id if by_score else Lead.id
    if cursor:
        value, last_id = _decode_cursor(cursor, sort)
        # ``key <= value`` first, so the index bounds the walk.
        query = query.where(key <= value, sa.or_(key < value, tie < last_id))
    found = session.execute(query.order_by(key.desc(), tie.desc()).limit(limit + 1)).all()
    page = found[:limit]
    consents: dict[uuid.UUID, dict[str, str]] = {row[0]: {} for row in page}
    if consents:
        for lead_id, purpose, status in session.execute(
            sa.select(Consent.lead_id, Consent.purpose, Consent.status).where(
                Consent.lead_id.in_(list(consents))
            )
        ):
            consents[lead_id][purpose] = status
    half_life = scoring_rules.active(session).half_life_seconds
    now = clock.now()
    rows = [
        LeadRow(
            id=lead_id,
            created_at=created_at,
            language=language,
            stage=stage,
            grade=grade,
            score=round(scores.score_at(score, as_of, now, half_life), 2) if as_of else 0.0,
            suspect=bool(suspect),
            first_form=first_form,
            first_form_name=form_name,
            utm_source=utm_source,
            utm_campaign=utm_campaign,
            consents=consents[lead_id],
            stored_score=float(score),
        )
        for (
            lead_id,
            created_at,
            language,
            stage,
            grade,
            score,
            suspect,
            first_form,
            form_name,
            utm_source,
            utm_campaign,
            as_of,
        ) in page
    ]
    following = _encode_cursor(sort, rows[-1]) if len(found) > limit else None
    return rows, following


def selection(filters: Filters) -> sa.Select[Any]:
    """The ids of every lead matching ``filters``, oldest first: what an export of the
    list's leads reads (``export.service``), with the list's own conditions."""
    state = _StateColumns.of(scored_only=False)
    return (
        sa.select(Lead.id)
        .select_from(Lead)
        .outerjoin(LeadScore, LeadScore.lead_id == Lead.id)
        .where(*_conditions(filters, state))
        .order_by(Lead.created_at, Lead.id)
    )


def forms(session: Session) -> list[tuple[str, str]]:
    """(public id, name) of every form, for a filter's choices."""
    return [
        (public_id, name)
        for public_id, name in session.execute(
            sa.select(Form.public_id, Form.name).order_by(Form.name)
        )
    ]
