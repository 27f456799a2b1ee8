"""Scoring tables: rule sets, behaviour events, scores, stages, salespeople, handoffs.

No plaintext personal data of leads lives here: event properties are sealed
under the lead's data key; only event types, rule names and numbers are plain.
Every lead row points at ``leads.id`` with ``ON DELETE CASCADE`` so erasure
removes it. Salespeople are staff, not leads, but their name and address are
sealed too (a data key of their own per row) and found by a blind index.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from leadvault import clock, i18n
from leadvault.model_base import Base, UTCDateTime


class Stage(enum.StrEnum):
    NEW = "new"
    MQL = "mql"
    SAL = "sal"
    SQL = "sql"
    WON = "won"
    LOST = "lost"
    RECYCLED = "recycled"
    DISQUALIFIED = "disqualified"


class HandoffStatus(enum.StrEnum):
    QUEUED = "queued"  # no salesperson available: the fallback queue
    OFFERED = "offered"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    EXPIRED = "expired"  # not accepted within the SLA; offered to the next person
    WITHDRAWN = "withdrawn"  # the lead withdrew sales_contact consent


class RuleSet(Base):
    """One loaded version of the rules file; exactly one is active."""

    __tablename__ = "scoring_rule_sets"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    version: Mapped[int] = mapped_column(sa.Integer, unique=True)
    source: Mapped[str] = mapped_column(sa.String(255))
    raw_text: Mapped[str] = mapped_column(sa.Text)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    loaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    active: Mapped[bool] = mapped_column(sa.Boolean, default=False)


class Event(Base):
    """A behaviour event; its properties are sealed, its points plain."""

    __tablename__ = "scoring_events"
    __table_args__ = (sa.Index("ix_scoring_events_lead_time", "lead_id", "occurred_at"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    lead_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("leads.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(sa.String(40))
    source: Mapped[str] = mapped_column(sa.String(16))  # internal, api, browser
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    # JSON sealed under the lead's data key (field "event/<id>"); None when empty.
    properties: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    # {rule name: points} awarded at ingestion under rules_version.
    awards: Mapped[dict[str, float]] = mapped_column(sa.JSON, default=dict)
    rules_version: Mapped[int] = mapped_column(sa.Integer, default=0)


class LeadScore(Base):
    """A lead's scoring state: engagement score (decayed to ``as_of``), fit, stage."""

    __tablename__ = "lead_scores"
    # By score: the console's list sorted by score, a page at a time.
    __table_args__ = (
        sa.Index("ix_lead_scores_stage", "stage"),
        sa.Index("ix_lead_scores_score", "score"),
    )

    lead_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("leads.id", ondelete="CASCADE"), primary_key=True
    )
    score: Mapped[float] = mapped_column(sa.Float, default=0.0)
    as_of: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    fit_points: Mapped[float] = mapped_column(sa.Float, default=0.0)
    fit_grade: Mapped[str] = mapped_column(sa.String(1), default="D")
    suspect: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    # Plausibility findings such as "disposable", "free_mail", "role_address".
    flags: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    stage: Mapped[str] = mapped_column(sa.String(16), default=Stage.NEW)
    stage_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    # First touch, for the funnel report: a form id and marketing labels, not personal data.
    first_form: Mapped[str | None] = mapped_column(sa.String(32))
    utm_source: Mapped[str | None] = mapped_column(sa.String(100))
    utm_campaign: Mapped[str | None] = mapped_column(sa.String(100))
    enrichment_pending: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    enrichment_cost: Mapped[float] = mapped_column(sa.Float, default=0.0)
    rules_version: Mapped[int] = mapped_column(sa.Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)


class RuleScore(Base):
    """One rule's share of a lead's engagement score, decayed like the score itself."""

    __tablename__ = "lead_rule_scores"

    lead_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("leads.id", ondelete="CASCADE"), primary_key=True
    )
    rule: Mapped[str] = mapped_column(sa.String(80), primary_key=True)
    value: Mapped[float] = mapped_column(sa.Float, default=0.0)
    as_of: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # Points awarded on cap_day (UTC), for the per-rule daily cap.
    cap_day: Mapped[dt.date | None] = mapped_column(sa.Date)
    cap_used: Mapped[float] = mapped_column(sa.Float, default=0.0)


class StageChange(Base):
    """Every lifecycle transition with its cause (rule, event, person, system)."""

    __tablename__ = "stage_history"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    lead_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("leads.id", ondelete="CASCADE"), index=True
    )
    from_stage: Mapped[str | None] = mapped_column(sa.String(16))
    to_stage: Mapped[str] = mapped_column(sa.String(16))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    cause_kind: Mapped[str] = mapped_column(sa.String(16))  # rule, event, person, system
    cause: Mapped[str] = mapped_column(sa.String(120))


class Salesperson(Base):
    """A salesperson. Staff are data subjects too: name and address are sealed
    (``routing.contact``), found by the blind index of the address."""

    __tablename__ = "sales_people"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    email_index: Mapped[bytes] = mapped_column(sa.LargeBinary(32), unique=True)
    payload: Mapped[bytes] = mapped_column(sa.LargeBinary)
    payload_owner: Mapped[str] = mapped_column(sa.String(64))
    payload_key: Mapped[bytes] = mapped_column(sa.LargeBinary)
    payload_key_version: Mapped[int] = mapped_column(sa.Integer, index=True)
    language: Mapped[str] = mapped_column(sa.String(8), default=i18n.DEFAULT_LANGUAGE)
    weight: Mapped[int] = mapped_column(sa.Integer, default=1)
    weekly_capacity: Mapped[int] = mapped_column(sa.Integer, default=50)
    absent: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)


class SalesTeam(Base):
    __tablename__ = "sales_teams"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(80), unique=True)
    strategy: Mapped[str] = mapped_column(sa.String(16), default="round_robin")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)


class TeamMember(Base):
    __tablename__ = "sales_team_members"

    team_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sales_teams.id", ondelete="CASCADE"), primary_key=True
    )
    person_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sales_people.id", ondelete="CASCADE"), primary_key=True
    )
    # Smooth weighted round robin: the member's running credit.
    credit: Mapped[int] = mapped_column(sa.Integer, default=0)


class Handoff(Base):
    """One offer of a lead to a salesperson (or to the fallback queue)."""

    __tablename__ = "sales_handoffs"
    __table_args__ = (sa.Index("ix_sales_handoffs_status_offered", "status", "offered_at"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    lead_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("leads.id", ondelete="CASCADE"), index=True
    )
    person_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sales_people.id"), index=True)
    team_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sales_teams.id"))
    routing_rule: Mapped[str] = mapped_column(sa.String(80))
    status: Mapped[str] = mapped_column(sa.String(16))
    attempt: Mapped[int] = mapped_column(sa.Integer, default=1)
    offered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    reminded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    reject_reason: Mapped[str | None] = mapped_column(sa.String(32))
    # {"need": true, "budget": false, "authority": true, "timeline": true}: booleans only.
    bant: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)


class Absence(Base):
    """A salesperson away for whole days (UTC): routing skips them from ``starts_on``
    through ``ends_on``. No reason is kept (it could be health data)."""

    __tablename__ = "sales_absences"
    __table_args__ = (sa.Index("ix_sales_absences_person_ends", "person_id", "ends_on"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(sa.ForeignKey("sales_people.id", ondelete="CASCADE"))
    starts_on: Mapped[dt.date] = mapped_column(sa.Date)
    ends_on: Mapped[dt.date] = mapped_column(sa.Date)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
