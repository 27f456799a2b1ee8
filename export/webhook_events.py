"""Webhook events: the types an endpoint may subscribe to, and queueing an event as one
outbox row (kind ``webhook``) per subscribed endpoint in the transaction of the change
that caused it (the worker delivers it: ``export.delivery``). Endpoints: ``export.webhooks``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from export.models import EndpointStatus, WebhookEndpoint, WebhookMessage
from leadvault import clock
from leadvault.i18n import N_
from leadvault.models import OutboxKind, OutboxMessage, OutboxStatus

# Event types an endpoint may subscribe to, with what they mean.
EVENT_TYPES: dict[str, str] = {
    "lead.confirmed": N_("A lead confirmed a purpose by double opt-in"),
    "lead.stage_changed": N_(
        "A lead moved to another lifecycle stage (MQL, SAL, SQL, won, lost …)"
    ),
    "lead.handoff_accepted": N_("A salesperson accepted a lead"),
    "lead.updated": N_("A confirmed lead's profile fields changed"),
    "consent.withdrawn": N_("A lead withdrew a purpose"),
    "lead.erased": N_("A lead was erased: erase your copy (carries no personal data)"),
}
TEST_EVENT = "webhook.test"
# Events whose body never carries contact data.
NO_CONTACT = frozenset({"lead.erased", TEST_EVENT})
_ENDPOINT_CACHE = "export.webhook_endpoints"


def forget_cache(session: Session) -> None:
    session.info.pop(_ENDPOINT_CACHE, None)


def _subscribers(session: Session, event_type: str) -> list[tuple[int, list[str]]]:
    """Active endpoints as (id, event types), read once per transaction."""
    transaction = session.get_transaction()
    cached = session.info.get(_ENDPOINT_CACHE)
    if cached is None or cached[0] is not transaction:
        rows = session.execute(
            sa.select(WebhookEndpoint.id, WebhookEndpoint.event_types).where(
                WebhookEndpoint.status == EndpointStatus.ACTIVE
            )
        ).all()
        cached = (transaction, [(row.id, list(row.event_types or [])) for row in rows])
        session.info[_ENDPOINT_CACHE] = cached
    return [entry for entry in cached[1] if event_type in entry[1]]


def subscribed(session: Session, event_type: str) -> bool:
    return bool(_subscribers(session, event_type))


def emit(
    session: Session,
    event_type: str,
    *,
    lead_id: uuid.UUID | None,
    data: Mapping[str, Any],
    occurred_at: dt.datetime | None = None,
    endpoint_ids: Sequence[int] | None = None,
) -> list[int]:
    """Queue one event for every subscribed endpoint; returns the outbox ids."""
    targets = (
        list(endpoint_ids)
        if endpoint_ids is not None
        else [endpoint_id for endpoint_id, _types in _subscribers(session, event_type)]
    )
    if not targets:
        return []
    now = clock.now()
    event_id = f"msg_{uuid.uuid4().hex}"
    body = {**({"lead_id": str(lead_id)} if lead_id is not None else {}), **data}
    rows = [
        OutboxMessage(
            kind=OutboxKind.WEBHOOK,
            template=event_type,
            purpose=None,
            lead_id=None,
            payload=b"",
            payload_owner=event_id,
            status=OutboxStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        for _ in targets
    ]
    session.add_all(rows)
    session.flush()
    session.add_all(
        WebhookMessage(
            outbox_id=row.id,
            endpoint_id=endpoint_id,
            event_id=event_id,
            event_type=event_type,
            occurred_at=occurred_at or now,
            lead_id=lead_id,
            data=body,
            contact_sent=False,
        )
        for row, endpoint_id in zip(rows, targets, strict=True)
    )
    session.flush()
    return [row.id for row in rows]
