"""Sales handoff: promote qualified leads, offer them, mail the salesperson; what the
mail and the handoff page show of the lead is ``scoring.handoff_summary``'s, the verdict
(accept, reject, BANT, SQL/won/lost) ``scoring.handoff_verdict``'s.

Only leads with a confirmed ``sales_contact`` consent are handed off; the others
stay MQL. The mail is bound to the lead (erasure removes it) and queued under
the ``sales_contact`` purpose (withdrawal cancels it while still queued).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from consent import service as consent_service
from leadvault import audit, clock, i18n, leads, locale_formats, outbox, untrusted
from leadvault.branding import mail_parts
from leadvault.crypto import payload_id
from leadvault.db import mail_context, settings_of, vault_of
from leadvault.i18n import N_
from leadvault.mail import MailContent
from leadvault.models import Lead
from scoring import handoff_summary, routing, stages
from scoring import rules as rules_module
from scoring.handoff_verdict import (
    NOT_OPEN,
    SALES_PURPOSE,
    BantIncomplete,
    HandoffError,
    accept,
    bant_answer,
    bant_missing,
    mark,
    person_label,
    read_bant,
    record_bant,
    reject,
    withdraw_open,
)
from scoring.models import Handoff, HandoffStatus, Salesperson, Stage
from scoring.rule_model import Rules
from scoring.signals import handoff_changed

HANDOFF_TOKEN = "handoff"
TOKEN_MAX_AGE = 90 * 86400
OPEN = (HandoffStatus.QUEUED, HandoffStatus.OFFERED, HandoffStatus.ACCEPTED)

# The verdict (scoring.handoff_verdict) is this service's too: callers name it here.
__all__ = [
    "HANDOFF_TOKEN",
    "NOT_OPEN",
    "OPEN",
    "SALES_PURPOSE",
    "TOKEN_MAX_AGE",
    "BantIncomplete",
    "HandoffError",
    "accept",
    "bant_answer",
    "bant_missing",
    "handoff_url",
    "leads_in",
    "mark",
    "offer_if_consented",
    "open_handoff",
    "person_label",
    "promote_if_qualified",
    "read_bant",
    "read_token",
    "record_bant",
    "reject",
    "sla_job",
    "withdraw_open",
]


# --- promotion and offers --------------------------------------------------------


def promote_if_qualified(
    session: Session,
    lead_id: uuid.UUID,
    rules: Rules,
    *,
    cause_kind: str,
    cause: str,
    score_before: float | None = None,
    at_event: bool = False,
) -> bool:
    state = stages.state_of(session, lead_id)
    if not stages.qualifies(state, rules, score_before, at_event=at_event):
        return False
    stages.transition(session, state, Stage.MQL, cause_kind=cause_kind, cause=cause)
    offer_if_consented(session, lead_id, rules)
    return True


def open_handoff(session: Session, lead_id: uuid.UUID) -> Handoff | None:
    return session.scalars(
        sa.select(Handoff)
        .where(Handoff.lead_id == lead_id, Handoff.status.in_([s.value for s in OPEN]))
        .order_by(Handoff.offered_at.desc())
        .limit(1)
    ).first()


def offer_if_consented(session: Session, lead_id: uuid.UUID, rules: Rules) -> Handoff | None:
    """Hand an MQL to sales, if it consented to sales contact and is not offered yet."""
    state = stages.state_of(session, lead_id)
    if state.stage != Stage.MQL or open_handoff(session, lead_id) is not None:
        return None
    if not consent_service.has_consent(session, lead_id, SALES_PURPOSE):
        return None  # stays MQL; the funnel report counts it as such
    return _offer(session, lead_id, rules, exclude=set(), attempt=1)


def _tried(session: Session, lead_id: uuid.UUID) -> set[int]:
    return {
        pid
        for pid in session.scalars(sa.select(Handoff.person_id).where(Handoff.lead_id == lead_id))
        if pid is not None
    }


def _offer(
    session: Session, lead_id: uuid.UUID, rules: Rules, *, exclude: set[int], attempt: int
) -> Handoff | None:
    lead = leads.get(session, lead_id)
    if lead is None:
        return None
    handoff = Handoff(
        id=uuid.uuid4(),
        lead_id=lead_id,
        routing_rule="queue",
        status=HandoffStatus.QUEUED,
        attempt=attempt,
        offered_at=clock.now(),
        bant={},
    )
    session.add(handoff)
    session.flush()
    _assign(session, handoff, lead, rules, exclude=exclude)
    return handoff


def _assign(
    session: Session, handoff: Handoff, lead: Lead, rules: Rules, *, exclude: set[int] | None = None
) -> bool:
    """Route a queued handoff; offer it and mail the salesperson when someone is found."""
    email = leads.email_of(session, lead)
    values = routing.routing_values(leads.attributes_of(session, lead), email.rpartition("@")[2])
    tried = _tried(session, lead.id) if exclude is None else exclude
    choice = routing.choose(session, rules, values, tried)
    if choice.person is None:
        return False
    handoff.person_id = choice.person.id
    handoff.team_id = choice.team.id if choice.team else None
    handoff.routing_rule = choice.rule
    handoff.status = HandoffStatus.OFFERED
    handoff.offered_at = clock.now()
    session.flush()
    _mail(session, handoff, lead, choice.person, rules, template="handoff")
    handoff_changed.send(session, lead_id=lead.id, status=HandoffStatus.OFFERED.value)
    return True


# --- tokens ----------------------------------------------------------------------


def handoff_url(session: Session, handoff: Handoff, action: str | None = None) -> str:
    token = vault_of(session).sign(HANDOFF_TOKEN, {"h": handoff.id.hex})
    suffix = f"/{action}" if action else ""
    return f"{settings_of(session).base_url}/h/{token}{suffix}"


def read_token(session: Session, token: str) -> Handoff | None:
    """Raises TokenInvalid or TokenExpired; None when the lead was erased."""
    payload = vault_of(session).unsign(HANDOFF_TOKEN, token, TOKEN_MAX_AGE)
    return session.get(Handoff, payload_id(payload, "h"))


# --- the mail to the salesperson ------------------------------------------------------


N_("a lead")
_SUBJECTS = {
    "handoff": N_("New lead for you: %(who)s (grade %(grade)s, score %(score)s)"),
    "reminder": N_("Reminder: %(who)s is waiting for you (grade %(grade)s, score %(score)s)"),
}


def _mail(
    session: Session,
    handoff: Handoff,
    lead: Lead,
    person: Salesperson,
    rules: Rules,
    *,
    template: str,
) -> None:
    lang = person.language if person.language in i18n.LANGUAGES else i18n.DEFAULT_LANGUAGE
    who = routing.contact(session, person)
    context = mail_context(
        session,
        lang,
        person=who,
        lead=handoff_summary.summary(session, handoff, rules),
        page_url=handoff_url(session, handoff),
        accept_url=handoff_url(session, handoff, "accept"),
        reject_url=handoff_url(session, handoff, "reject"),
        hours=rules.accept_within_hours,
    )
    found = context["lead"]
    # The lead agreed to be contacted by sales: name and company say who it is.
    named = untrusted.one_line(
        ", ".join(
            part for part in (found.get("name"), found.get("attributes", {}).get("company")) if part
        ),
        limit=80,
    )
    content = MailContent(
        to=who.email,
        subject=i18n.translate(
            lang,
            _SUBJECTS[template],
            who=untrusted.defuse(named) if named else i18n.translate(lang, "a lead"),
            grade=found["fit_grade"],
            score=locale_formats.format_number(found["score"], lang),
        ),
        **mail_parts(f"scoring/mail/{template}", context),
        language=lang,
    )
    outbox.enqueue_mail(session, content, template=template, lead=lead, purpose=SALES_PURPOSE)
    # The mail carries the lead's decrypted data to the salesperson: a look like the
    # handoff page's (leadvault.looks), recorded in the transaction that queues the mail.
    audit.record_lead(
        session,
        lead.id,
        audit.Action.LEAD_REVEALED,
        actor=person_label(handoff),
        detail={
            "fields": sorted(set(handoff_summary.fields_shown(found))),
            "via": f"{template}_mail",
        },
    )


# --- the SLA ---------------------------------------------------------------------------


def sla_job(session: Session) -> dict[str, int]:
    """Remind, then reassign offers not accepted in time; retry the queue."""
    rules = rules_module.active(session)
    now = clock.now()
    done = {"reminded": 0, "reassigned": 0, "dequeued": 0}
    remind_before = now - dt.timedelta(hours=rules.remind_after_hours)
    expire_before = now - dt.timedelta(hours=rules.accept_within_hours)
    offered = list(
        session.scalars(
            sa.select(Handoff)
            .where(Handoff.status == HandoffStatus.OFFERED, Handoff.offered_at <= remind_before)
            .order_by(Handoff.offered_at)
            .with_for_update(skip_locked=True)
        )
    )
    for handoff in offered:
        lead = session.get(Lead, handoff.lead_id)
        person = session.get(Salesperson, handoff.person_id) if handoff.person_id else None
        if lead is None or person is None:
            continue
        if handoff.offered_at <= expire_before:
            handoff.status = HandoffStatus.EXPIRED
            handoff.decided_at = now
            session.flush()
            _offer(
                session,
                lead.id,
                rules,
                exclude=_tried(session, lead.id),
                attempt=handoff.attempt + 1,
            )
            done["reassigned"] += 1
        elif handoff.reminded_at is None:
            handoff.reminded_at = now
            _mail(session, handoff, lead, person, rules, template="reminder")
            done["reminded"] += 1
    queued = list(session.scalars(sa.select(Handoff).where(Handoff.status == HandoffStatus.QUEUED)))
    for handoff in queued:
        lead = session.get(Lead, handoff.lead_id)
        if lead is not None and _assign(session, handoff, lead, rules):
            done["dequeued"] += 1
    session.flush()
    return done


def leads_in(session: Session, lead_ids: Iterable[uuid.UUID]) -> list[Handoff]:
    ids = list(lead_ids)
    return list(session.scalars(sa.select(Handoff).where(Handoff.lead_id.in_(ids))))
