"""Core tables: the lead's identity and data key, its encrypted attributes, the outbox.

A lead's identity lives in the core, not in ``capture/``, because ``consent/``
(which sits below ``capture/``) must find, export and erase it. Domain
packages keep their own tables and point at ``leads.id``.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from leadvault import clock, i18n
from leadvault.model_base import Base, UTCDateTime


class Lead(Base):
    __tablename__ = "leads"
    # The console lists leads newest first, a page at a time, and exports read them
    # oldest first; both in (created_at, id) order, walked from this index.
    __table_args__ = (sa.Index("ix_leads_created_at_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    # HMAC of the normalised address: equality lookups without plaintext.
    email_index: Mapped[bytes] = mapped_column(sa.LargeBinary(32), unique=True)
    email: Mapped[bytes] = mapped_column(sa.LargeBinary)  # sealed under the data key
    wrapped_key: Mapped[bytes] = mapped_column(sa.LargeBinary)
    key_version: Mapped[int] = mapped_column(sa.Integer, index=True)
    language: Mapped[str] = mapped_column(sa.String(8), default=i18n.DEFAULT_LANGUAGE)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    last_activity_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)

    attributes: Mapped[list[LeadAttribute]] = relationship(
        back_populates="lead", cascade="all, delete-orphan", passive_deletes=True
    )


class LeadAttribute(Base):
    """One encrypted profile field (first_name, company, …) of a lead."""

    __tablename__ = "lead_attributes"

    lead_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("leads.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    value: Mapped[bytes] = mapped_column(sa.LargeBinary)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)

    lead: Mapped[Lead] = relationship(back_populates="attributes")


class OutboxKind(enum.StrEnum):
    MAIL = "mail"
    WEBHOOK = "webhook"


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class OutboxMessage(Base):
    """A message to deliver, written in the transaction that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (sa.Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(sa.String(16), default=OutboxKind.MAIL)
    template: Mapped[str] = mapped_column(sa.String(40))
    # Marketing purpose the message is sent under; withdrawal cancels queued ones.
    purpose: Mapped[str | None] = mapped_column(sa.String(40), index=True)
    lead_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("leads.id", ondelete="CASCADE"), index=True
    )
    # The rendered message, sealed under the lead's data key (erasure shreds it
    # too) or, for messages about no lead, under a data key of its own.
    # The sealed MailContent; deleted LEADVAULT_SENT_MAIL_RETENTION_DAYS after sending.
    payload: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    payload_owner: Mapped[str] = mapped_column(sa.String(64))
    payload_key: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    payload_key_version: Mapped[int | None] = mapped_column(sa.Integer, index=True)
    subject: Mapped[bytes | None] = mapped_column(sa.LargeBinary)  # sealed, for access exports
    status: Mapped[str] = mapped_column(sa.String(16), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    locked_by: Mapped[str | None] = mapped_column(sa.String(64))
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    message_id: Mapped[str | None] = mapped_column(sa.String(255))
    last_error: Mapped[str | None] = mapped_column(sa.Text)

    attempt_log: Mapped[list[OutboxAttempt]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="OutboxAttempt.id"
    )


class OutboxAttempt(Base):
    """One delivery attempt; ``error`` is None for the one that succeeded."""

    __tablename__ = "outbox_attempts"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    outbox_id: Mapped[int] = mapped_column(
        sa.ForeignKey("outbox.id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    worker: Mapped[str] = mapped_column(sa.String(64))
    error: Mapped[str | None] = mapped_column(sa.Text)


class Counter(Base):
    """Named daily counters (bot submissions, unknown event types …): numbers only."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(sa.String(80), primary_key=True)
    day: Mapped[dt.date] = mapped_column(sa.Date, primary_key=True)
    value: Mapped[int] = mapped_column(sa.BigInteger, default=0)


class ApiToken(Base):
    """A token for the JSON API; only its SHA-256 is stored (tokens are random, 256 bits)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(80), unique=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    # Room for the admin console's roles: "consent:read", "events:write", …
    scopes: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class SpentToken(Base):
    """Keys of single-use tokens that were used: links (data access, erasure) and
    bot-defence tokens (render tokens, ALTCHA solutions). Purged once expired."""

    __tablename__ = "spent_tokens"

    nonce: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    spent_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    # The token cannot be valid after this; the retention job forgets the key then.
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class InboxStatus(enum.StrEnum):
    PENDING = "pending"
    FAILED = "failed"


class InboxItem(Base):
    """Accepted work (a form submission …) that the worker turns into rows.

    The public endpoint only validates and stores the sealed item, so it
    answers fast and survives bursts; the worker then writes the lead, the
    ledger entries and the mail in one transaction and deletes the item.
    """

    __tablename__ = "inbox"
    __table_args__ = (
        sa.Index("ix_inbox_due", "status", "next_attempt_at"),
        # An id is never used twice (SQLite would otherwise give the highest id again
        # once its item is deleted): an InboxReceipt names one item for ever.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(sa.String(40))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    # Sealed under a data key of its own, wrapped by the master key.
    payload: Mapped[bytes] = mapped_column(sa.LargeBinary)
    payload_owner: Mapped[str] = mapped_column(sa.String(64))
    payload_key: Mapped[bytes] = mapped_column(sa.LargeBinary)
    payload_key_version: Mapped[int] = mapped_column(sa.Integer, index=True)
    status: Mapped[str] = mapped_column(sa.String(16), default=InboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    locked_by: Mapped[str | None] = mapped_column(sa.String(64))
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(sa.String(200))
    # Blind index of the address the item is about, so erasing that lead also
    # drops work not yet turned into rows (it would otherwise recreate the lead).
    subject_index: Mapped[bytes | None] = mapped_column(sa.LargeBinary(32), index=True)


class InboxReceipt(Base):
    """SQLite: an inbox item stored by a batch, written in the batch's transaction.

    The inbox lives in the queue file, the leads in the main one; SQLite commits the
    two files one after the other (main first). A worker killed between the two leaves
    the item queued with its rows stored: its receipt keeps it from being stored again
    and has it deleted by the next batch (``leadvault.inbox``). A receipt goes once its
    item is gone. PostgreSQL commits once and writes none.
    """

    __tablename__ = "inbox_receipts"

    item_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)


class AuditEntry(Base):
    """Who looked at or changed what (append-only, hash-chained; see ``leadvault.audit``).

    Pseudonymous: the actor is a label such as ``user:7`` or ``cli:root``, the
    object an id; the IP is truncated to its network. No personal data.
    """

    __tablename__ = "audit_trail"
    __table_args__ = (sa.Index("ix_audit_trail_object", "object_type", "object_id"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(sa.String(80), index=True)
    action: Mapped[str] = mapped_column(sa.String(40), index=True)
    object_type: Mapped[str] = mapped_column(sa.String(40))
    object_id: Mapped[str | None] = mapped_column(sa.String(64))
    # Canonical JSON of a flat dict of scalars (never personal data).
    detail: Mapped[str] = mapped_column(sa.Text)
    ip_prefix: Mapped[str | None] = mapped_column(sa.String(64))
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    entry_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)


class AuditHead(Base):
    """A single row locked by every audit append, so the chain never forks."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    last_id: Mapped[int] = mapped_column(sa.Integer, default=0)
    last_hash: Mapped[str] = mapped_column(sa.String(64))
