"""scoring: behaviour events, rule sets, scores, stages, salespeople, handoffs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 19:50:59.581079
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sales_people",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("weekly_capacity", sa.Integer(), nullable=False),
        sa.Column("absent", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sales_people")),
        sa.UniqueConstraint("email", name=op.f("uq_sales_people_email")),
    )
    op.create_table(
        "sales_teams",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("strategy", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sales_teams")),
        sa.UniqueConstraint("name", name=op.f("uq_sales_teams_name")),
    )
    op.create_table(
        "scoring_rule_sets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("raw_text", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scoring_rule_sets")),
        sa.UniqueConstraint("version", name=op.f("uq_scoring_rule_sets_version")),
    )
    op.create_table(
        "lead_rule_scores",
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("rule", sa.String(length=80), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cap_day", sa.Date(), nullable=True),
        sa.Column("cap_used", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_lead_rule_scores_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("lead_id", "rule", name=op.f("pk_lead_rule_scores")),
    )
    op.create_table(
        "lead_scores",
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fit_points", sa.Float(), nullable=False),
        sa.Column("fit_grade", sa.String(length=1), nullable=False),
        sa.Column("suspect", sa.Boolean(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("stage_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_form", sa.String(length=32), nullable=True),
        sa.Column("utm_source", sa.String(length=100), nullable=True),
        sa.Column("utm_campaign", sa.String(length=100), nullable=True),
        sa.Column("enrichment_pending", sa.Boolean(), nullable=False),
        sa.Column("enrichment_cost", sa.Float(), nullable=False),
        sa.Column("rules_version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_lead_scores_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_lead_scores")),
    )
    with op.batch_alter_table("lead_scores", schema=None) as batch_op:
        batch_op.create_index("ix_lead_scores_stage", ["stage"], unique=False)

    op.create_table(
        "sales_handoffs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("routing_rule", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("offered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reject_reason", sa.String(length=32), nullable=True),
        sa.Column("bant", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_sales_handoffs_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["sales_people.id"],
            name=op.f("fk_sales_handoffs_person_id_sales_people"),
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["sales_teams.id"], name=op.f("fk_sales_handoffs_team_id_sales_teams")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sales_handoffs")),
    )
    with op.batch_alter_table("sales_handoffs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sales_handoffs_lead_id"), ["lead_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_sales_handoffs_person_id"), ["person_id"], unique=False
        )
        batch_op.create_index(
            "ix_sales_handoffs_status_offered", ["status", "offered_at"], unique=False
        )

    op.create_table(
        "sales_team_members",
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("credit", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["sales_people.id"],
            name=op.f("fk_sales_team_members_person_id_sales_people"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["sales_teams.id"],
            name=op.f("fk_sales_team_members_team_id_sales_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("team_id", "person_id", name=op.f("pk_sales_team_members")),
    )
    op.create_table(
        "scoring_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("properties", sa.LargeBinary(), nullable=True),
        sa.Column("awards", sa.JSON(), nullable=False),
        sa.Column("rules_version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_scoring_events_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scoring_events")),
    )
    with op.batch_alter_table("scoring_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_scoring_events_lead_time", ["lead_id", "occurred_at"], unique=False
        )

    op.create_table(
        "stage_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("from_stage", sa.String(length=16), nullable=True),
        sa.Column("to_stage", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cause_kind", sa.String(length=16), nullable=False),
        sa.Column("cause", sa.String(length=120), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_stage_history_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stage_history")),
    )
    with op.batch_alter_table("stage_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stage_history_lead_id"), ["lead_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("stage_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stage_history_lead_id"))

    op.drop_table("stage_history")
    with op.batch_alter_table("scoring_events", schema=None) as batch_op:
        batch_op.drop_index("ix_scoring_events_lead_time")

    op.drop_table("scoring_events")
    op.drop_table("sales_team_members")
    with op.batch_alter_table("sales_handoffs", schema=None) as batch_op:
        batch_op.drop_index("ix_sales_handoffs_status_offered")
        batch_op.drop_index(batch_op.f("ix_sales_handoffs_person_id"))
        batch_op.drop_index(batch_op.f("ix_sales_handoffs_lead_id"))

    op.drop_table("sales_handoffs")
    with op.batch_alter_table("lead_scores", schema=None) as batch_op:
        batch_op.drop_index("ix_lead_scores_stage")

    op.drop_table("lead_scores")
    op.drop_table("lead_rule_scores")
    op.drop_table("scoring_rule_sets")
    op.drop_table("sales_teams")
    op.drop_table("sales_people")
