"""Behaviour events: internal ones from signals, batches from the host's server, and
(through :mod:`scoring.tracking`) single ones from the browser, each scored at once.

The browser's events and the token that identifies their lead live in
``scoring/tracking.py``; the lead's events, scores and stages in the access export in
``scoring/access_data.py``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from leadvault import batch, clock, counters, leads
from leadvault.db import vault_of
from leadvault.models import Lead
from scoring import enrichment, handoff, scores, stages
from scoring import rules as rules_module
from scoring.models import Event
from scoring.signals import events_recorded

UNKNOWN_TYPE = "scoring.events.unknown_type"
UNKNOWN_LEAD = "scoring.events.unknown_lead"


@dataclasses.dataclass(frozen=True)
class RawEvent:
    """A validated event before its lead is resolved (``lead_id`` or ``email``)."""

    type: str
    occurred_at: dt.datetime
    properties: Mapping[str, Any]
    lead_id: uuid.UUID | None = None
    email: str | None = None


@dataclasses.dataclass(frozen=True)
class IngestResult:
    accepted: int
    unknown_type: int
    unknown_lead: int


def _keys(session: Session, found: Mapping[uuid.UUID, Lead]) -> dict[uuid.UUID, Any]:
    return {lead_id: leads.data_key(session, lead) for lead_id, lead in found.items()}


def _after(
    session: Session,
    rules: rules_module.Rules,
    states: Mapping[uuid.UUID, scores.ScoreState],
    cause: Mapping[uuid.UUID, str],
) -> None:
    """Promote the leads an event batch made qualified (rarely more than a few)."""
    for lead_id, state in states.items():
        # The batch's in-memory states decide who is worth a look at the stored one;
        # reading every lead's row again cost a third of a batch.
        if not stages.qualifies(state, rules, state.score_before, at_event=True):
            continue
        handoff.promote_if_qualified(
            session,
            lead_id,
            rules,
            cause_kind="event",
            cause=cause.get(lead_id, "event"),
            score_before=state.score_before,
            at_event=True,
        )


def record_event(
    session: Session,
    lead_id: uuid.UUID,
    type: str,
    properties: Mapping[str, Any] | None,
    occurred_at: dt.datetime | None,
    *,
    source: str = "internal",
) -> bool:
    """Score one event of a known lead (internal events, e.g. ``asset_downloaded``)."""
    rules = rules_module.active(session)
    if type not in rules.event_types or (
        source != "internal" and type in rules_module.INTERNAL_ONLY
    ):
        counters.increment(session, UNKNOWN_TYPE)
        return False
    lead = leads.get(session, lead_id)
    if lead is None:
        return False
    event = scores.Incoming(
        lead_id, type, dict(properties or {}), occurred_at or clock.now(), source
    )
    states = scores.apply_events(session, rules, [event], _keys(session, {lead_id: lead}))
    _after(session, rules, states, {lead_id: type})
    if events_recorded.receivers:
        events_recorded.send(session, events=[(lead_id, type, event.properties)])
    return True


def ingest(session: Session, raw: Sequence[RawEvent], *, source: str = "api") -> IngestResult:
    """A batch from the host's server: one lookup for all its leads, bulk writes."""
    rules = rules_module.active(session)
    known = [
        event
        for event in raw
        if event.type in rules.event_types and event.type not in rules_module.INTERNAL_ONLY
    ]
    unknown_type = len(raw) - len(known)
    vault = vault_of(session)
    ids = {event.lead_id for event in known if event.lead_id is not None}
    indexes = {event.email: vault.blind_index(event.email) for event in known if event.email}
    found: dict[uuid.UUID, Lead] = {}
    by_index: dict[bytes, Lead] = {}
    id_list, index_list = list(ids), list(set(indexes.values()))
    for start in range(0, max(len(id_list), len(index_list)), 500):
        condition = sa.or_(
            Lead.id.in_(id_list[start : start + 500]),
            Lead.email_index.in_(index_list[start : start + 500]),
        )
        for lead in session.scalars(sa.select(Lead).where(condition)):
            found[lead.id] = lead
            by_index[lead.email_index] = lead
    incoming = []
    for event in known:
        lead = (
            found.get(event.lead_id)
            if event.lead_id is not None
            else by_index.get(indexes.get(event.email or "", b""))
        )
        if lead is None:
            continue
        incoming.append(
            scores.Incoming(lead.id, event.type, event.properties, event.occurred_at, source)
        )
    unknown_lead = len(known) - len(incoming)
    if unknown_type:
        counters.increment(session, UNKNOWN_TYPE, unknown_type)
    if unknown_lead:
        counters.increment(session, UNKNOWN_LEAD, unknown_lead)
    if incoming:
        used = {event.lead_id: found[event.lead_id] for event in incoming}
        states = scores.apply_events(session, rules, incoming, _keys(session, used))
        _after(session, rules, states, {e.lead_id: e.type for e in incoming})
        if events_recorded.receivers:
            events_recorded.send(
                session, events=[(e.lead_id, e.type, e.properties) for e in incoming]
            )
    return IngestResult(len(incoming), unknown_type, unknown_lead)


def occurred(
    session: Session,
    lead_id: uuid.UUID,
    types: Sequence[str],
    since: dt.datetime,
    properties: Mapping[str, str] | None = None,
) -> bool:
    """Whether the lead has an event of one of ``types`` at or after ``since`` (with
    ``properties`` among its properties, when given)."""
    rows = session.execute(
        sa.select(Event.id, Event.properties)
        .where(Event.lead_id == lead_id, Event.type.in_(list(types)), Event.occurred_at >= since)
        .order_by(Event.occurred_at)
    ).all()
    if not properties:
        return bool(rows)
    lead = leads.get(session, lead_id)
    if lead is None:
        return False
    key = leads.data_key(session, lead)
    for row in rows:
        stored = key.decrypt_json(f"event/{row.id}", row.properties) if row.properties else {}
        if all(str(stored.get(k)) == str(v) for k, v in properties.items()):
            return True
    return False


# --- internal events from signals ----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Submitted:
    lead_id: uuid.UUID
    form: str
    kind: str
    utm_source: str | None
    utm_campaign: str | None
    at: dt.datetime


def on_form_submitted(
    session: Session, *, lead_id: uuid.UUID, form: Any, submission: Any, **_: Any
) -> None:
    """First touch, plausibility and fit, then the event itself; for a worker's batch
    once at its end, on the batch's states (see :func:`_form_submissions`)."""
    item = _Submitted(
        lead_id,
        form.public_id,
        form.kind,
        submission.utm_source,
        submission.utm_campaign,
        submission.created_at or clock.now(),
    )
    # before_writes: in a SQLite snapshot batch, scored before the write lock is taken.
    if not batch.defer(
        session, "scoring.form_submitted", item, _form_submissions, before_writes=True
    ):
        _form_submissions(session, [item])


def _form_submissions(session: Session, items: list[_Submitted]) -> None:
    rules = rules_module.active(session)
    found_leads = leads.get_many(session, (item.lead_id for item in items))
    items = [item for item in items if item.lead_id in found_leads]
    if not items:
        return
    # New states stay out of the session: inserted with their fit and the events' points,
    # together, when the events are stored (not flushed and read back).
    states = stages.states_of(session, list(found_leads), add=False)
    fresh = {
        lead_id: state for lead_id, state in states.items() if isinstance(state, scores.NewState)
    }
    with session.no_autoflush:
        for item in items:
            state = states[item.lead_id]
            if state.first_form is None:
                state.first_form = item.form
                state.utm_source = item.utm_source
                state.utm_campaign = item.utm_campaign
            enrichment.run(session, found_leads[item.lead_id], state, rules, paid=False)
    if "form_submitted" not in rules.event_types:
        new = {lead_id: scores.fresh_state(state) for lead_id, state in fresh.items()}
        scores.save_states(session, new, rules.version)
        counters.increment(session, UNKNOWN_TYPE, len(items))
        return
    events = [
        scores.Incoming(
            item.lead_id,
            "form_submitted",
            {"form": item.form, "kind": item.kind},
            item.at,
            "internal",
        )
        for item in items
    ]
    scored = scores.apply_events(session, rules, events, _keys(session, found_leads), fresh=fresh)
    _after(session, rules, scored, dict.fromkeys(found_leads, "form_submitted"))
    if events_recorded.receivers:
        events_recorded.send(session, events=[(e.lead_id, e.type, e.properties) for e in events])


def on_purpose_confirmed(
    session: Session,
    *,
    lead_id: uuid.UUID,
    purpose: str,
    form_ref: str | None = None,
    at: dt.datetime | None = None,
    **_: Any,
) -> None:
    # One event per purpose (rules score each), stamped with the confirmation's time:
    # the journey shows the events of one confirmation as one step (scoring.journey).
    record_event(
        session,
        lead_id,
        "optin_confirmed",
        {"purpose": purpose, **({"form": form_ref} if form_ref else {})},
        at or clock.now(),
    )
    if purpose == handoff.SALES_PURPOSE:
        handoff.offer_if_consented(session, lead_id, rules_module.active(session))


def on_purpose_withdrawn(session: Session, *, lead_id: uuid.UUID, purpose: str, **_: Any) -> None:
    record_event(session, lead_id, "unsubscribed", {"purpose": purpose}, clock.now())
    if purpose == handoff.SALES_PURPOSE:
        handoff.withdraw_open(session, lead_id)


def on_lead_event(
    session: Session,
    *,
    lead_id: uuid.UUID,
    event_type: str,
    properties: Mapping[str, Any] | None = None,
    occurred_at: dt.datetime | None = None,
    **_: Any,
) -> None:
    record_event(session, lead_id, event_type, properties, occurred_at)
