"""Signals from the packages below, turned into webhook events.

Each receiver runs inside the transaction of the change, so the outbox rows
are committed (or rolled back) with it. The event data holds ids, stages,
purposes and field names, never personal data; contact data is added at send
time for endpoints whose purpose the lead granted (``export.delivery``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from export import webhooks


def on_purpose_confirmed(
    session: Session, *, lead_id: uuid.UUID, purpose: str, form_ref: str | None = None, **_: Any
) -> None:
    webhooks.emit(
        session, "lead.confirmed", lead_id=lead_id, data={"purpose": purpose, "form": form_ref}
    )


def on_purpose_withdrawn(session: Session, *, lead_id: uuid.UUID, purpose: str, **_: Any) -> None:
    webhooks.emit(session, "consent.withdrawn", lead_id=lead_id, data={"purpose": purpose})


def on_lead_erasing(session: Session, *, lead_id: uuid.UUID, **_: Any) -> None:
    webhooks.emit(session, "lead.erased", lead_id=lead_id, data={})


def on_lead_updated(session: Session, *, lead_id: uuid.UUID, fields: list[str], **_: Any) -> None:
    """Only leads that confirmed something: an unconfirmed address is nobody's business yet."""
    from consent.models import Consent, ConsentStatus

    if not webhooks.subscribed(session, "lead.updated"):
        return
    confirmed = session.scalar(
        sa.select(sa.func.count()).where(
            Consent.lead_id == lead_id, Consent.status == ConsentStatus.GRANTED
        )
    )
    if confirmed:
        webhooks.emit(session, "lead.updated", lead_id=lead_id, data={"fields": sorted(fields)})


def on_stage_changed(
    session: Session,
    *,
    lead_id: uuid.UUID,
    from_stage: str | None,
    to_stage: str,
    cause_kind: str,
    at: dt.datetime | None = None,
    **_: Any,
) -> None:
    webhooks.emit(
        session,
        "lead.stage_changed",
        lead_id=lead_id,
        data={"from": from_stage, "to": to_stage, "cause": cause_kind},
        occurred_at=at,
    )


def on_handoff_accepted(
    session: Session,
    *,
    lead_id: uuid.UUID,
    handoff_id: uuid.UUID,
    person_id: int | None,
    **_: Any,
) -> None:
    webhooks.emit(
        session,
        "lead.handoff_accepted",
        lead_id=lead_id,
        data={"handoff_id": str(handoff_id), "salesperson_id": person_id},
    )


def connect() -> None:
    from leadvault import signals
    from scoring import signals as scoring_signals

    signals.purpose_confirmed.connect(on_purpose_confirmed)
    signals.purpose_withdrawn.connect(on_purpose_withdrawn)
    signals.lead_erasing.connect(on_lead_erasing)
    signals.lead_updated.connect(on_lead_updated)
    scoring_signals.stage_changed.connect(on_stage_changed)
    scoring_signals.handoff_accepted.connect(on_handoff_accepted)
