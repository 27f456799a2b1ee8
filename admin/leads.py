"""Leads for staff: list and filter (pseudonymous), find by address, detail, reveal,
change stage, export one, erase. The API and ``leadvault leads`` use these.

Lists and details carry no personal data: ids, stages, grades, scores, forms,
marketing labels and consent states. Decrypted data leaves only through
:func:`reveal` and :func:`export_one`, each one audit entry.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import math
import uuid
from typing import Any, TypedDict

import sqlalchemy as sa
from sqlalchemy.orm import Session

from capture.models import Form, Submission
from consent import ledger, rights
from consent.models import Consent
from leadvault import audit, clock
from leadvault import leads as core_leads
from leadvault.i18n import N_
from leadvault.models import Lead
from scoring import rules as scoring_rules
from scoring import scores, stages
from scoring.models import (
    Event,
    Handoff,
    HandoffStatus,
    LeadScore,
    RuleScore,
    Stage,
    StageChange,
)

MAX_PAGE = 100
GRADES = ("A", "B", "C", "D")
STAGES = tuple(stage.value for stage in Stage)
PURPOSE_STATES = ("none", "pending", "granted", "withdrawn")
SORTS = ("created", "score")
NO_SOURCE = "-"  # with first_touch: the leads whose first touch had no such value
# Handoffs that put a lead in a salesperson's hands.
_ASSIGNED = (HandoffStatus.OFFERED, HandoffStatus.ACCEPTED)


class LeadError(ValueError):
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


def get(session: Session, lead_id: uuid.UUID, *, assigned_to: int | None = None) -> Lead | None:
    """The lead, or None (also when it is not in the hands of ``assigned_to``)."""
    lead = core_leads.get(session, lead_id)
    if lead is None or assigned_to is None:
        return lead
    held = session.scalar(
        sa.select(sa.func.count()).select_from(
            assigned_ids(assigned_to).where(Handoff.lead_id == lead_id).subquery()
        )
    )
    return lead if held else None


def lookup(session: Session, email: str, *, assigned_to: int | None = None) -> Lead | None:
    """Exact match through the blind index (no plaintext is searched)."""
    lead = core_leads.find_by_email(session, email)
    if lead is None:
        return None
    return get(session, lead.id, assigned_to=assigned_to)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def detail(session: Session, lead: Lead) -> dict[str, Any]:
    """Everything staff may see without decrypting: state, consents and their history,
    the timeline, the score breakdown, handoffs. No personal data."""
    state = session.scalars(sa.select(LeadScore).where(LeadScore.lead_id == lead.id)).one_or_none()
    rules = scoring_rules.active(session)
    now = clock.now()
    score = (
        round(scores.score_at(state.score, state.as_of, now, rules.half_life_seconds), 2)
        if state
        else 0.0
    )
    consent_rows = session.scalars(
        sa.select(Consent).where(Consent.lead_id == lead.id).order_by(Consent.purpose)
    ).all()
    forms = dict(session.execute(sa.select(Form.id, Form.public_id)).all())
    timeline: list[dict[str, Any]] = []
    for sub in session.scalars(
        sa.select(Submission).where(Submission.lead_id == lead.id).order_by(Submission.created_at)
    ):
        timeline.append(
            {
                "at": _iso(sub.created_at),
                "kind": "submission",
                "form": forms.get(sub.form_id),
                "utm_source": sub.utm_source,
                "utm_campaign": sub.utm_campaign,
            }
        )
    for event in session.scalars(
        sa.select(Event).where(Event.lead_id == lead.id).order_by(Event.occurred_at).limit(500)
    ):
        timeline.append(
            {
                "at": _iso(event.occurred_at),
                "kind": "event",
                "type": event.type,
                "points": round(sum(event.awards.values()), 2),
            }
        )
    for change in session.scalars(
        sa.select(StageChange).where(StageChange.lead_id == lead.id).order_by(StageChange.at)
    ):
        timeline.append(
            {
                "at": _iso(change.at),
                "kind": "stage",
                "from": change.from_stage,
                "to": change.to_stage,
                "cause_kind": change.cause_kind,
            }
        )
    handoffs = session.scalars(
        sa.select(Handoff).where(Handoff.lead_id == lead.id).order_by(Handoff.offered_at)
    ).all()
    for handoff in handoffs:
        timeline.append(
            {"at": _iso(handoff.offered_at), "kind": "handoff", "status": handoff.status}
        )
    timeline.sort(key=lambda item: item["at"] or "")
    breakdown = [
        {
            "rule": row.rule,
            "points": round(scores.score_at(row.value, row.as_of, now, rules.half_life_seconds), 2),
        }
        for row in session.scalars(
            sa.select(RuleScore).where(RuleScore.lead_id == lead.id).order_by(RuleScore.rule)
        )
    ]
    return {
        "id": str(lead.id),
        "created_at": _iso(lead.created_at),
        "last_activity_at": _iso(lead.last_activity_at),
        "language": lead.language,
        "stage": state.stage if state else "new",
        "grade": state.fit_grade if state else "D",
        "score": score,
        "fit_points": state.fit_points if state else 0.0,
        "suspect": bool(state.suspect) if state else False,
        "flags": list(state.flags) if state else [],
        "fields": sorted(a.name for a in lead.attributes),
        "consents": [
            {
                "purpose": c.purpose,
                "status": c.status,
                "requested_at": _iso(c.requested_at),
                "granted_at": _iso(c.granted_at),
                "withdrawn_at": _iso(c.withdrawn_at),
            }
            for c in consent_rows
        ],
        "consent_history": [
            {
                "id": entry.id,
                "at": _iso(entry.created_at),
                "event": entry.event,
                "purpose": entry.purpose,
                "form": entry.form_ref,
                "text_version": entry.text_version,
                "entry_hash": entry.entry_hash,
            }
            for entry in ledger.history(session, str(lead.id))
        ],
        "timeline": timeline,
        "score_breakdown": breakdown,
        "handoffs": [
            {
                "id": str(h.id),
                "status": h.status,
                "salesperson": h.person_id,
                "routing_rule": h.routing_rule,
                "offered_at": _iso(h.offered_at),
                "decided_at": _iso(h.decided_at),
                "reject_reason": h.reject_reason,
            }
            for h in handoffs
        ],
    }


class Revealed(TypedDict):
    id: str
    email: str
    profile: dict[str, str]


def reveal(session: Session, lead: Lead, *, actor: str, ip: str | None) -> Revealed:
    """The lead's decrypted address and profile; one audit entry naming the fields shown
    (the console, the API and the command line alike)."""
    profile = core_leads.attributes_of(session, lead)
    audit.record_lead(
        session,
        lead.id,
        audit.Action.LEAD_REVEALED,
        actor=actor,
        detail={"fields": ["email", *sorted(profile)]},
        ip=ip,
    )
    return {"id": str(lead.id), "email": core_leads.email_of(session, lead), "profile": profile}


def export_one(session: Session, lead: Lead, *, actor: str, ip: str | None) -> dict[str, Any]:
    """The lead's whole record (the access-export document); one audit entry."""
    document = rights.access_export(session, lead)
    audit.record_lead(
        session,
        lead.id,
        audit.Action.LEAD_EXPORTED,
        actor=actor,
        detail={"format": "access-export"},
        ip=ip,
    )
    return document


REASON_MAX = 100
# Reasons staff choose in the console for a stage change. The API takes free text too;
# the audit trail, which outlives an erasure, names only these (free text: "other").
CHANGE_REASONS = {
    "qualified": N_("Qualified in a conversation"),
    "deal_won": N_("Deal signed"),
    "deal_lost": N_("Deal lost"),
    "no_need": N_("No need"),
    "no_budget": N_("No budget"),
    "not_reachable": N_("Not reachable"),
    "wrong_person": N_("Wrong person"),
    "fake_data": N_("Fake data"),
    "duplicate": N_("Duplicate"),
    "correction": N_("Correcting a mistake"),
}


def change_stage(
    session: Session, lead: Lead, to: str, reason: str, *, actor: str, ip: str | None
) -> StageChange:
    """Move the lead by hand; one stage change and one audit entry (from, to, reason)."""
    reason = " ".join(reason.split())
    if not reason:
        raise LeadError("say why (a reason)")
    if len(reason) > REASON_MAX:
        raise LeadError(f"the reason has at most {REASON_MAX} characters")
    state = stages.state_of(session, lead.id, for_update=True)
    try:
        change = stages.transition(
            session, state, to, cause_kind="person", cause=f"{actor}: {reason}"
        )
    except stages.StageError as exc:
        raise LeadError(str(exc)) from None
    audit.record_lead(
        session,
        lead.id,
        audit.Action.LEAD_STAGE_CHANGED,
        actor=actor,
        detail={
            "from": change.from_stage,
            "to": change.to_stage,
            "reason": reason if reason in CHANGE_REASONS else "other",
        },
        ip=ip,
    )
    return change


def erase(session: Session, lead: Lead, *, actor: str, ip: str | None) -> None:
    """Erase (one audit entry, recorded by the erasure itself)."""
    rights.erase(session, lead, actor=actor, reason="staff", ip=ip)
