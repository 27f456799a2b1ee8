"""Export tables: webhook endpoints, what each queued delivery is about, and its attempts.

A webhook delivery is an outbox row of kind ``webhook`` (written in the
transaction of the change); ``webhook_messages`` holds what it is about (event
type and id, the lead's id, the event's non-personal data). Contact data is
never stored here: it is read and consent-checked when the request is sent,
so nothing personal outlives a delivery. Endpoint URLs and signing secrets are
sealed (URLs often carry a capability token).
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from leadvault import clock
from leadvault.model_base import Base, UTCDateTime


class EndpointStatus(enum.StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    description: Mapped[str] = mapped_column(sa.String(200), default="")
    event_types: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    # Payloads carry a lead's contact data only when the lead granted this purpose.
    purpose: Mapped[str | None] = mapped_column(sa.ForeignKey("purposes.key"))
    status: Mapped[str] = mapped_column(sa.String(16), default=EndpointStatus.ACTIVE)
    # {"url", "secret", "previous"} sealed under a data key of its own.
    payload: Mapped[bytes] = mapped_column(sa.LargeBinary)
    payload_owner: Mapped[str] = mapped_column(sa.String(64))
    payload_key: Mapped[bytes] = mapped_column(sa.LargeBinary)
    payload_key_version: Mapped[int] = mapped_column(sa.Integer, index=True)
    # Until then the previous secret signs too (zero-downtime rotation).
    previous_secret_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    failing_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)


class WebhookMessage(Base):
    """What one queued webhook delivery (an outbox row) is about."""

    __tablename__ = "webhook_messages"

    outbox_id: Mapped[int] = mapped_column(
        sa.ForeignKey("outbox.id", ondelete="CASCADE"), primary_key=True
    )
    endpoint_id: Mapped[int] = mapped_column(
        sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    # The `webhook-id`: one per event, the same for every endpoint and attempt.
    event_id: Mapped[str] = mapped_column(sa.String(40), index=True)
    event_type: Mapped[str] = mapped_column(sa.String(40))
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # The lead's random id (no foreign key: lead.erased outlives the lead).
    lead_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    # The event's data without personal data (ids, stages, purposes, field names).
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    # Set when a sent body carried the lead's contact data (for the access export).
    contact_sent: Mapped[bool] = mapped_column(sa.Boolean, default=False)


class WebhookAttempt(Base):
    """One request to an endpoint: status and duration, never a body."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    outbox_id: Mapped[int] = mapped_column(
        sa.ForeignKey("outbox.id", ondelete="CASCADE"), index=True
    )
    endpoint_id: Mapped[int] = mapped_column(
        sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    status_code: Mapped[int | None] = mapped_column(sa.Integer)
    duration_ms: Mapped[int] = mapped_column(sa.Integer, default=0)
    # Why it failed, in our words ("connection refused", "HTTP 500"); None when delivered.
    error: Mapped[str | None] = mapped_column(sa.String(200))


class ImportPermission(Base):
    """An imported contact without proof of consent, waiting for its re-permission mail.

    The worker sends these at most LEADVAULT_IMPORT_REPERMISSION_PER_HOUR an hour
    (``export.repermissions.send_repermissions``); ``requested_at`` is set when the
    opt-in request and its mail were queued, and the row is forgotten a while later.
    """

    __tablename__ = "import_repermissions"

    lead_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("leads.id", ondelete="CASCADE"), primary_key=True
    )
    purposes: Mapped[list[str]] = mapped_column(sa.JSON)
    language: Mapped[str] = mapped_column(sa.String(8))
    # The import run (``import:<batch>`` in the ledger's form reference).
    batch: Mapped[str] = mapped_column(sa.String(16))
    queued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now, index=True)
    requested_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
