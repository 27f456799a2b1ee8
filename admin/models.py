"""Staff accounts and their sign-ins (server-side sessions).

Staff are data subjects too: the address is sealed under a data key of the
account's own and found by its blind index, like a lead's or a salesperson's.
The TOTP secret is sealed under the same key.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from leadvault import clock
from leadvault.model_base import Base, UTCDateTime


class Role(enum.StrEnum):
    OWNER = "owner"
    MARKETING = "marketing"
    SALES = "sales"
    PRIVACY = "privacy"
    VIEWER = "viewer"


class User(Base):
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    email_index: Mapped[bytes] = mapped_column(sa.LargeBinary(32), unique=True)
    # {"email": …} sealed under the account's own data key (rotated with the master key).
    payload: Mapped[bytes] = mapped_column(sa.LargeBinary)
    payload_owner: Mapped[str] = mapped_column(sa.String(64))
    payload_key: Mapped[bytes] = mapped_column(sa.LargeBinary)
    payload_key_version: Mapped[int] = mapped_column(sa.Integer, index=True)
    role: Mapped[str] = mapped_column(sa.String(16))
    # argon2id (PHC string); None until the set-password link is used.
    password_hash: Mapped[str | None] = mapped_column(sa.String(255))
    password_changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The set-password link in force (random nonce inside the signed link); used once.
    setup_nonce: Mapped[str | None] = mapped_column(sa.String(64))
    totp_secret: Mapped[bytes | None] = mapped_column(sa.LargeBinary)  # sealed
    # The last time step accepted, so a code is never accepted twice.
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    # A sales account sees the leads handed to this salesperson.
    salesperson_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("sales_people.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    sessions: Mapped[list[StaffSession]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def active(self) -> bool:
        return self.disabled_at is None


class SessionStage(enum.StrEnum):
    FULL = "full"  # signed in
    TOTP = "totp"  # password right, the code is outstanding
    ENROL = "enrol"  # password right, must set up TOTP first (the owner requires it)


class StaffSession(Base):
    """A sign-in. The browser holds a random token (in a signed cookie whose age is
    the idle timeout); only its SHA-256 is stored here, with the absolute expiry."""

    __tablename__ = "staff_sessions"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)  # sha256 of the token
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("staff_users.id", ondelete="CASCADE"), index=True
    )
    stage: Mapped[str] = mapped_column(sa.String(8), default=SessionStage.FULL)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)

    user: Mapped[User] = relationship(back_populates="sessions")


class AdminSetting(Base):
    """Instance-wide account policy an owner sets (``totp_required``)."""

    __tablename__ = "admin_settings"

    key: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    value: Mapped[str] = mapped_column(sa.String(200))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)


class PersonalToken(Base):
    """A personal API token: acts as its account, narrowed to ``scopes``; expires;
    revocable. Only its SHA-256 is stored (the token is 256 random bits)."""

    __tablename__ = "staff_api_tokens"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("staff_users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(80))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


# --- the dashboard's daily aggregates (admin.rollup) ------------------------------------
# Kept in the transaction of every change that moves them; ``leadvault dashboard
# rebuild`` writes them afresh from the leads, their scoring state and stage history.
# Days are local days of the zone in ``report_state`` (the instance's when built).


class ReportState(Base):
    """One row: the time zone the aggregates' days are counted in, and when they were built."""

    __tablename__ = "report_state"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    time_zone: Mapped[str] = mapped_column(sa.String(64))
    built_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)


class ReportLead(Base):
    """What one lead adds to the aggregates, so a change can take it back exactly."""

    __tablename__ = "report_leads"

    lead_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("leads.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[dt.date] = mapped_column(sa.Date)  # the local day the lead was created
    form: Mapped[str] = mapped_column(sa.String(32))  # first form's public id, "-" for none
    source: Mapped[str] = mapped_column(sa.String(100))  # first touch's UTM source, "-"
    suspect: Mapped[bool] = mapped_column(sa.Boolean)
    # Comma-separated: funnel stages ever entered (mql, sal, sql, won) and sales' reasons.
    reached: Mapped[str] = mapped_column(sa.String(40))
    rejected: Mapped[str] = mapped_column(sa.String(200))


class ReportDay(Base):
    """Leads created on one local day, of one first form and first UTM source."""

    __tablename__ = "report_days"

    day: Mapped[dt.date] = mapped_column(sa.Date, primary_key=True)
    form: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    leads: Mapped[int] = mapped_column(sa.Integer, default=0)
    suspect: Mapped[int] = mapped_column(sa.Integer, default=0)
    # Leads that ever entered MQL / SAL (the sources' lead quality; the funnel's steps
    # are counted in report_steps).
    mql: Mapped[int] = mapped_column(sa.Integer, default=0)
    sal: Mapped[int] = mapped_column(sa.Integer, default=0)


class ReportRejection(Base):
    """Leads of a day and first UTM source that sales rejected, per reason."""

    __tablename__ = "report_rejections"

    day: Mapped[dt.date] = mapped_column(sa.Date, primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    reason: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    leads: Mapped[int] = mapped_column(sa.Integer, default=0)


class ReportStep(Base):
    """How long a lead took from one funnel stage to the next (first entries): the
    medians per stage are read from here, through the (stage, day, seconds) index."""

    __tablename__ = "report_steps"
    __table_args__ = (sa.Index("ix_report_steps_stage_day", "stage", "day", "seconds"),)

    lead_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("leads.id", ondelete="CASCADE"), primary_key=True
    )
    stage: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    day: Mapped[dt.date] = mapped_column(sa.Date)
    seconds: Mapped[float] = mapped_column(sa.Float)
