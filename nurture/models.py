"""Nurture tables: sequence versions, enrollments, sent steps, clicks, bounce suppressions.

No plaintext personal data lives here: a lead is its id, an address only its
blind index. Every row about a lead points at ``leads.id`` with ``ON DELETE
CASCADE`` (erasure removes it); a bounce suppression keeps only the keyed hash
of the address, like consent's suppression list.
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


class SequenceVersion(Base):
    """One loaded version of a sequence file; the newest of an enabled sequence is active."""

    __tablename__ = "nurture_sequences"
    __table_args__ = (sa.UniqueConstraint("key", "version"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(sa.String(40))
    version: Mapped[int] = mapped_column(sa.Integer)
    name: Mapped[str] = mapped_column(sa.String(120))
    purpose: Mapped[str] = mapped_column(sa.String(40))
    trigger: Mapped[str] = mapped_column(sa.String(24))
    source: Mapped[str] = mapped_column(sa.String(255))
    raw_text: Mapped[str] = mapped_column(sa.Text)
    # Template files the sequence names ({"welcome.de.md": "…"}), stored with it.
    files: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    loaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    active: Mapped[bool] = mapped_column(sa.Boolean, default=False, index=True)


class EnrollmentStatus(enum.StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    EXITED = "exited"


class Enrollment(Base):
    """A lead's way through one sequence. ``due_at`` is set only while active, so the
    worker's tick finds due steps through its index without looking at anyone else."""

    __tablename__ = "nurture_enrollments"
    # A lead is in a sequence at most once at a time: active_key is the sequence
    # key while active and NULL after (NULLs never collide in a unique index).
    __table_args__ = (
        sa.UniqueConstraint("lead_id", "active_key"),
        sa.Index("ix_nurture_enrollments_sequence", "sequence_key", "version"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    lead_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("leads.id", ondelete="CASCADE"), index=True
    )
    sequence_key: Mapped[str] = mapped_column(sa.String(40))
    version: Mapped[int] = mapped_column(sa.Integer)
    active_key: Mapped[str | None] = mapped_column(sa.String(40))
    status: Mapped[str] = mapped_column(sa.String(16), default=EnrollmentStatus.ACTIVE)
    step: Mapped[int] = mapped_column(sa.Integer, default=0)  # index of the next step
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    # Why a due mail step waits longer: "cap" (frequency cap) or "quiet" (quiet hours).
    held: Mapped[str | None] = mapped_column(sa.String(8))
    entered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    exit_reason: Mapped[str | None] = mapped_column(sa.String(40))
    # The mail step sent last, to which an exit or the MQL is attributed in reports.
    last_mail: Mapped[str | None] = mapped_column(sa.String(80))
    mql_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    mql_after: Mapped[str | None] = mapped_column(sa.String(80))


class Send(Base):
    """One mail step queued for a lead (the outbox row carries the mail itself)."""

    __tablename__ = "nurture_sends"
    __table_args__ = (sa.Index("ix_nurture_sends_lead_time", "lead_id", "queued_at"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    enrollment_id: Mapped[int] = mapped_column(
        sa.ForeignKey("nurture_enrollments.id", ondelete="CASCADE"), index=True
    )
    lead_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("leads.id", ondelete="CASCADE"))
    sequence_key: Mapped[str] = mapped_column(sa.String(40))
    version: Mapped[int] = mapped_column(sa.Integer)
    step: Mapped[str] = mapped_column(sa.String(80))
    mail: Mapped[str] = mapped_column(sa.String(80))
    language: Mapped[str] = mapped_column(sa.String(8))
    outbox_id: Mapped[int | None] = mapped_column(sa.Integer)
    queued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    # Links went through the click redirect (the lead had confirmed tracking).
    tracked: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    bounced_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    complained_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Click(Base):
    """The first click on one link of one sent mail (by a lead with tracking consent)."""

    __tablename__ = "nurture_clicks"

    send_id: Mapped[int] = mapped_column(
        sa.ForeignKey("nurture_sends.id", ondelete="CASCADE"), primary_key=True
    )
    link: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    lead_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("leads.id", ondelete="CASCADE"), index=True
    )
    clicked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)


class MailSuppression(Base):
    """An address that hard-bounced: no marketing mail goes to it until it confirms again."""

    __tablename__ = "nurture_suppressions"

    email_index: Mapped[bytes] = mapped_column(sa.LargeBinary(32), primary_key=True)
    lead_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("leads.id", ondelete="SET NULL"), index=True
    )
    reason: Mapped[str] = mapped_column(sa.String(16))  # hard_bounce
    status: Mapped[str | None] = mapped_column(sa.String(16))  # the DSN status, e.g. 5.1.1
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
