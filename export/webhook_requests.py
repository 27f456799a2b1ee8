"""Building the worker's webhook requests: for claimed outbox rows, their endpoints, the
consent-checked contact data (read now, never stored) and the signed bodies; a Result
where none can be sent (``export.delivery`` sends them).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from export import signing, webhooks
from export.models import EndpointStatus, WebhookEndpoint, WebhookMessage
from leadvault import clock, leads
from leadvault.models import Lead, OutboxMessage, OutboxStatus


@dataclasses.dataclass(frozen=True)
class Prepared:
    outbox_id: int
    endpoint_id: int
    url: str
    body: bytes
    headers: dict[str, str]
    with_contact: bool


@dataclasses.dataclass(frozen=True)
class Result:
    outbox_id: int
    endpoint_id: int
    status: int | None
    duration_ms: int
    error: str | None
    with_contact: bool = False
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def body_of(message: WebhookMessage, contact: dict[str, str] | None) -> bytes:
    data: dict[str, Any] = dict(message.data or {})
    if contact is not None:
        data["contact"] = contact
    payload = {"type": message.event_type, "timestamp": _iso(message.occurred_at), "data": data}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _contacts(
    session: Session, wanted: set[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], dict[str, str]]:
    """Contact data for (lead, purpose) pairs whose purpose the lead has granted now."""
    from consent.models import Consent, ConsentStatus

    if not wanted:
        return {}
    lead_ids = list({lead_id for lead_id, _purpose in wanted})
    granted = {
        (row.lead_id, row.purpose)
        for row in session.execute(
            sa.select(Consent.lead_id, Consent.purpose).where(
                Consent.lead_id.in_(lead_ids), Consent.status == ConsentStatus.GRANTED
            )
        )
    }
    allowed = {pair for pair in wanted if pair in granted}
    found = {
        lead.id: lead
        for lead in session.scalars(
            sa.select(Lead).where(Lead.id.in_(list({lead_id for lead_id, _p in allowed})))
        )
    }
    result: dict[tuple[uuid.UUID, str], dict[str, str]] = {}
    for lead_id, purpose in allowed:
        lead = found.get(lead_id)
        if lead is None:
            continue
        contact = {"email": leads.email_of(session, lead), "language": lead.language}
        contact.update(sorted(leads.attributes_of(session, lead).items()))
        result[(lead_id, purpose)] = contact
    return result


def prepare(session: Session, ids: Sequence[int], *, worker_id: str) -> list[Prepared | Result]:
    """Signed requests for our claimed rows; a Result where none can be sent."""
    rows = session.execute(
        sa.select(OutboxMessage, WebhookMessage, WebhookEndpoint)
        .outerjoin(WebhookMessage, WebhookMessage.outbox_id == OutboxMessage.id)
        .outerjoin(WebhookEndpoint, WebhookEndpoint.id == WebhookMessage.endpoint_id)
        .where(OutboxMessage.id.in_(list(ids)))
        .order_by(OutboxMessage.id)
    ).all()
    ours = [
        (row, message, endpoint)
        for row, message, endpoint in rows
        if row.status == OutboxStatus.SENDING and row.locked_by == worker_id
    ]
    wanted = {
        (message.lead_id, endpoint.purpose)
        for _row, message, endpoint in ours
        if message is not None
        and endpoint is not None
        and endpoint.purpose
        and message.lead_id is not None
        and message.event_type not in webhooks.NO_CONTACT
    }
    contacts = _contacts(session, wanted)
    configs: dict[int, tuple[webhooks.EndpointConfig, list[str]]] = {}
    timestamp = int(clock.now().timestamp())
    out: list[Prepared | Result] = []
    for row, message, endpoint in ours:
        if message is None or endpoint is None:
            out.append(Result(row.id, 0, None, 0, "endpoint removed"))
            continue
        if endpoint.status != EndpointStatus.ACTIVE:
            out.append(Result(row.id, endpoint.id, None, 0, "endpoint disabled"))
            continue
        if endpoint.id not in configs:
            config = webhooks.config_of(session, endpoint)
            configs[endpoint.id] = (config, webhooks.signing_secrets(endpoint, config))
        config, secrets = configs[endpoint.id]
        contact = (
            contacts.get((message.lead_id, endpoint.purpose))
            if message.lead_id is not None and endpoint.purpose
            else None
        )
        body = body_of(message, contact)
        out.append(
            Prepared(
                row.id,
                endpoint.id,
                config.url,
                body,
                signing.headers(secrets, message.event_id, timestamp, body),
                contact is not None,
            )
        )
    return out
