"""Purposes, versioned consent texts, per-lead consent state, the ledger, suppression."""

from __future__ import annotations

import datetime as dt
import enum
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from leadvault import clock
from leadvault.model_base import Base, UTCDateTime


class Purpose(Base):
    __tablename__ = "purposes"

    key: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    # Marketing purposes get RFC 8058 one-click unsubscribe on every mail.
    marketing: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)


class ConsentText(Base):
    """One immutable version of a purpose's consent text in one language."""

    __tablename__ = "consent_texts"
    __table_args__ = (sa.UniqueConstraint("purpose", "language", "version"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    purpose: Mapped[str] = mapped_column(sa.ForeignKey("purposes.key"))
    language: Mapped[str] = mapped_column(sa.String(8))
    version: Mapped[int] = mapped_column(sa.Integer)
    text: Mapped[str] = mapped_column(sa.Text)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)


class ConsentStatus(enum.StrEnum):
    # The most private state first: nothing is allowed until confirmed.
    NONE = "none"
    PENDING = "pending"
    GRANTED = "granted"
    WITHDRAWN = "withdrawn"


class Consent(Base):
    """The current state of one purpose for one lead (the ledger holds the history)."""

    __tablename__ = "consents"

    lead_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("leads.id", ondelete="CASCADE"), primary_key=True
    )
    purpose: Mapped[str] = mapped_column(sa.ForeignKey("purposes.key"), primary_key=True)
    status: Mapped[str] = mapped_column(sa.String(16), default=ConsentStatus.NONE)
    text_id: Mapped[int | None] = mapped_column(sa.ForeignKey("consent_texts.id"))
    requested_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    granted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class OptInRequest(Base):
    """A pending double opt-in: one mail, one link, one or more purposes."""

    __tablename__ = "optin_requests"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    lead_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("leads.id", ondelete="CASCADE"), index=True
    )
    purposes: Mapped[list[str]] = mapped_column(sa.JSON)
    text_ids: Mapped[list[int]] = mapped_column(sa.JSON)
    form_ref: Mapped[str | None] = mapped_column(sa.String(40))
    language: Mapped[str] = mapped_column(sa.String(8))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now, index=True)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class LedgerEvent(enum.StrEnum):
    REQUESTED = "requested"
    CONFIRMED = "confirmed"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    ERASED = "erased"
    # Records which entries' proof was purged after its retention period.
    PRUNED = "pruned"


class LedgerEntry(Base):
    """Append-only, hash-chained proof of consent; pseudonymous (no personal data)."""

    __tablename__ = "consent_ledger"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    event: Mapped[str] = mapped_column(sa.String(16))
    # The lead's random id: meaningless once the lead is erased.
    subject: Mapped[str] = mapped_column(sa.String(36), index=True)
    purpose: Mapped[str | None] = mapped_column(sa.String(40))
    form_ref: Mapped[str | None] = mapped_column(sa.String(40))
    text_id: Mapped[int | None] = mapped_column(sa.Integer)
    text_version: Mapped[int | None] = mapped_column(sa.Integer)
    text_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    ip_prefix: Mapped[str | None] = mapped_column(sa.String(64))
    user_agent_hash: Mapped[str | None] = mapped_column(sa.String(64))
    detail: Mapped[str | None] = mapped_column(sa.String(200))
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    entry_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    # Set when the proof was purged: the content is cleared, the links stay, and
    # a later "pruned" entry lists this id so the chain still verifies.
    pruned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class LedgerHead(Base):
    """A single row locked by every append, so the chain never forks."""

    __tablename__ = "consent_ledger_head"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    last_id: Mapped[int] = mapped_column(sa.Integer, default=0)
    last_hash: Mapped[str] = mapped_column(sa.String(64))


class Suppression(Base):
    """An erased address, kept only as its keyed hash, so imports cannot revive it."""

    __tablename__ = "suppressions"

    email_index: Mapped[bytes] = mapped_column(sa.LargeBinary(32), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    reason: Mapped[str] = mapped_column(sa.String(40))


class EmailChange(Base):
    """A new address the lead asked for in the preference center (Art. 16), waiting for
    the confirmation from that address; the old address stays until then."""

    __tablename__ = "email_changes"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    lead_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("leads.id", ondelete="CASCADE"), index=True
    )
    new_email: Mapped[bytes] = mapped_column(sa.LargeBinary)  # sealed under the lead's key
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
