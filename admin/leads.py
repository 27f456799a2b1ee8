"""Leads for staff: list and filter (pseudonymous), find by address, detail, reveal,
change stage, export one, erase. The API and ``leadvault leads`` use these; the list
and its filters live in ``admin.lead_list`` and are named here too.

Lists and details carry no personal data: ids, stages, grades, scores, forms,
marketing labels and consent states. Decrypted data leaves only through
:func:`reveal` and :func:`export_one`, each one audit entry.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, TypedDict

import sqlalchemy as sa
from sqlalchemy.orm import Session

from admin.lead_list import (
    GRADES,
    MAX_PAGE,
    NO_SOURCE,
    PURPOSE_STATES,
    SORTS,
    STAGES,
    BadCursor,
    Filters,
    LeadError,
    LeadRow,
    assigned_ids,
    check_cursor,
    forms,
    list_leads,
    selection,
)
from capture.models import Form, Submission
from consent import ledger, rights
from consent.models import Consent
from leadvault import audit, clock
from leadvault import leads as core_leads
from leadvault.i18n import N_
from leadvault.models import Lead
from scoring import rules as scoring_rules
from scoring import scores, stages
from scoring.models import Event, Handoff, LeadScore, RuleScore, StageChange

# The list's names (admin.lead_list) are this service's too: callers import them from here.
__all__ = [
    "CHANGE_REASONS",
    "GRADES",
    "MAX_PAGE",
    "NO_SOURCE",
    "PURPOSE_STATES",
    "REASON_MAX",
    "SORTS",
    "STAGES",
    "BadCursor",
    "Filters",
    "LeadError",
    "LeadRow",
    "Revealed",
    "change_stage",
    "check_cursor",
    "detail",
    "erase",
    "export_one",
    "forms",
    "get",
    "list_leads",
    "lookup",
    "reveal",
    "selection",
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
        raise LeadError(N_("say why (a reason)"), field="reason")
    if len(reason) > REASON_MAX:
        raise LeadError(
            N_("the reason has at most %(max)s characters"), field="reason", max=REASON_MAX
        )
    state = stages.state_of(session, lead.id, for_update=True)
    try:
        change = stages.transition(
            session, state, to, cause_kind="person", cause=f"{actor}: {reason}"
        )
    except stages.StageError as exc:
        raise LeadError(exc.message, field=exc.field, **exc.values) from None
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
