"""Open and overdue handoffs: what waits for sales, for the console and the admin API.

Open means not yet decided: waiting in the fallback queue or offered to a
salesperson. An offer is overdue once it has waited longer than the active
rules' ``accept_within_hours`` (the SLA job then offers it to the next person).
A salesperson sees only their own; no personal data of the lead is read here.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from leadvault import clock
from scoring import routing
from scoring import rules as rules_module
from scoring.models import Handoff, HandoffStatus, LeadScore, Salesperson

WAITING = (HandoffStatus.QUEUED.value, HandoffStatus.OFFERED.value)
MAX_LIMIT = 200


@dataclasses.dataclass(frozen=True)
class BoardRow:
    id: uuid.UUID
    lead_id: uuid.UUID
    status: str
    person_id: int | None
    routing_rule: str
    attempt: int
    offered_at: dt.datetime
    due_at: dt.datetime
    overdue: bool
    reminded: bool
    grade: str
    score: float


@dataclasses.dataclass(frozen=True)
class Board:
    rows: list[BoardRow]
    open_count: int
    overdue_count: int
    next_after: tuple[dt.datetime, uuid.UUID] | None  # where the following page starts


def board(
    session: Session,
    *,
    person_id: int | None = None,
    overdue_only: bool = False,
    limit: int = 50,
    after: tuple[dt.datetime, uuid.UUID] | None = None,
) -> Board:
    """Waiting handoffs, the longest-waiting first (what needs action), a page at a
    time after the ``after`` cursor, with the counts of all open and overdue ones."""
    rules = rules_module.active(session)
    now = clock.now()
    window = dt.timedelta(hours=rules.accept_within_hours)
    deadline = now - window
    limit = max(1, min(limit, MAX_LIMIT))
    scope = [Handoff.status.in_(WAITING)]
    if person_id is not None:
        scope.append(Handoff.person_id == person_id)
    overdue = sa.and_(Handoff.status == HandoffStatus.OFFERED.value, Handoff.offered_at <= deadline)
    open_count = session.scalar(sa.select(sa.func.count(Handoff.id)).where(*scope)) or 0
    overdue_count = session.scalar(sa.select(sa.func.count(Handoff.id)).where(*scope, overdue)) or 0
    query = (
        sa.select(Handoff, LeadScore.fit_grade, LeadScore.score)
        .outerjoin(LeadScore, LeadScore.lead_id == Handoff.lead_id)
        .where(*scope)
        .order_by(Handoff.offered_at, Handoff.id)
        .limit(limit + 1)
    )
    if overdue_only:
        query = query.where(overdue)
    if after is not None:
        at, last_id = after
        query = query.where(
            sa.or_(Handoff.offered_at > at, sa.and_(Handoff.offered_at == at, Handoff.id > last_id))
        )
    found = session.execute(query).all()
    rows = [
        BoardRow(
            id=handoff.id,
            lead_id=handoff.lead_id,
            status=handoff.status,
            person_id=handoff.person_id,
            routing_rule=handoff.routing_rule,
            attempt=handoff.attempt,
            offered_at=handoff.offered_at,
            due_at=handoff.offered_at + window,
            overdue=handoff.status == HandoffStatus.OFFERED.value
            and handoff.offered_at <= deadline,
            reminded=handoff.reminded_at is not None,
            grade=grade or "D",
            score=float(score or 0.0),
        )
        for handoff, grade, score in found[:limit]
    ]
    following = (rows[-1].offered_at, rows[-1].id) if len(found) > limit else None
    return Board(rows, open_count, overdue_count, following)


def people_names(session: Session, person_ids: set[int]) -> dict[int, str]:
    """Salespeople's names for a page of the board (unsealed once per session)."""
    if not person_ids:
        return {}
    found = session.scalars(sa.select(Salesperson).where(Salesperson.id.in_(person_ids)))
    return {person.id: routing.contact(session, person).name for person in found}


def encode_cursor(after: tuple[dt.datetime, uuid.UUID] | None) -> str | None:
    if after is None:
        return None
    raw = f"{after[0].isoformat()}|{after[1]}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    """The ``after`` of :func:`encode_cursor`; ValueError for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _sep, last = raw.partition("|")
        when = dt.datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError(cursor)
        return when, uuid.UUID(last)
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(cursor) from exc
