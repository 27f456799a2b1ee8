"""the dashboard's daily aggregates (admin.rollup), built from the existing leads

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02 08:30:00.000000
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.orm import Session

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_state")),
    )
    op.create_table(
        "report_leads",
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("form", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("suspect", sa.Boolean(), nullable=False),
        sa.Column("reached", sa.String(length=40), nullable=False),
        sa.Column("rejected", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_report_leads_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_report_leads")),
    )
    op.create_table(
        "report_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("form", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("leads", sa.Integer(), nullable=False),
        sa.Column("suspect", sa.Integer(), nullable=False),
        sa.Column("mql", sa.Integer(), nullable=False),
        sa.Column("sal", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "form", "source", name=op.f("pk_report_days")),
    )
    op.create_table(
        "report_rejections",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("leads", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "source", "reason", name=op.f("pk_report_rejections")),
    )
    op.create_table(
        "report_steps",
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_report_steps_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("lead_id", "stage", name=op.f("pk_report_steps")),
    )
    op.create_index(
        "ix_report_steps_stage_day", "report_steps", ["stage", "day", "seconds"], unique=False
    )
    # The backfill: the same code as `leadvault dashboard rebuild`, in the instance's
    # time zone (passed in by `leadvault db upgrade`). It reads only columns that exist
    # at this revision (leads, lead_scores, stage_history, sales_handoffs).
    from admin import rollup

    zone = ZoneInfo(context.config.attributes.get("time_zone", "UTC"))
    rollup.rebuild(Session(bind=op.get_bind()), zone)


def downgrade() -> None:
    op.drop_index("ix_report_steps_stage_day", table_name="report_steps")
    op.drop_table("report_steps")
    op.drop_table("report_rejections")
    op.drop_table("report_days")
    op.drop_table("report_leads")
    op.drop_table("report_state")
