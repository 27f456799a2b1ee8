"""nurture sequences, runs, sends, clicks, bounce suppressions

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 20:37:43.733717
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nurture_sequences",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("purpose", sa.String(length=40), nullable=False),
        sa.Column("trigger", sa.String(length=24), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("raw_text", sa.Text(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nurture_sequences")),
        sa.UniqueConstraint("key", "version", name=op.f("uq_nurture_sequences_key_version")),
    )
    with op.batch_alter_table("nurture_sequences", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_nurture_sequences_active"), ["active"], unique=False)

    op.create_table(
        "nurture_enrollments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("sequence_key", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("active_key", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("held", sa.String(length=8), nullable=True),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exit_reason", sa.String(length=40), nullable=True),
        sa.Column("last_mail", sa.String(length=80), nullable=True),
        sa.Column("mql_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("mql_after", sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_nurture_enrollments_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nurture_enrollments")),
        sa.UniqueConstraint(
            "lead_id", "active_key", name=op.f("uq_nurture_enrollments_lead_id_active_key")
        ),
    )
    with op.batch_alter_table("nurture_enrollments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_nurture_enrollments_due_at"), ["due_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_nurture_enrollments_lead_id"), ["lead_id"], unique=False
        )
        batch_op.create_index(
            "ix_nurture_enrollments_sequence", ["sequence_key", "version"], unique=False
        )

    op.create_table(
        "nurture_suppressions",
        sa.Column("email_index", sa.LargeBinary(length=32), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_nurture_suppressions_lead_id_leads"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("email_index", name=op.f("pk_nurture_suppressions")),
    )
    with op.batch_alter_table("nurture_suppressions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_nurture_suppressions_lead_id"), ["lead_id"], unique=False
        )

    op.create_table(
        "nurture_sends",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("enrollment_id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("sequence_key", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=80), nullable=False),
        sa.Column("mail", sa.String(length=80), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tracked", sa.Boolean(), nullable=False),
        sa.Column("bounced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("complained_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["nurture_enrollments.id"],
            name=op.f("fk_nurture_sends_enrollment_id_nurture_enrollments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_nurture_sends_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nurture_sends")),
    )
    with op.batch_alter_table("nurture_sends", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_nurture_sends_enrollment_id"), ["enrollment_id"], unique=False
        )
        batch_op.create_index("ix_nurture_sends_lead_time", ["lead_id", "queued_at"], unique=False)

    op.create_table(
        "nurture_clicks",
        sa.Column("send_id", sa.Integer(), nullable=False),
        sa.Column("link", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("clicked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_nurture_clicks_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["send_id"],
            ["nurture_sends.id"],
            name=op.f("fk_nurture_clicks_send_id_nurture_sends"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("send_id", "link", name=op.f("pk_nurture_clicks")),
    )
    with op.batch_alter_table("nurture_clicks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_nurture_clicks_lead_id"), ["lead_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("nurture_clicks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_nurture_clicks_lead_id"))

    op.drop_table("nurture_clicks")
    with op.batch_alter_table("nurture_sends", schema=None) as batch_op:
        batch_op.drop_index("ix_nurture_sends_lead_time")
        batch_op.drop_index(batch_op.f("ix_nurture_sends_enrollment_id"))

    op.drop_table("nurture_sends")
    with op.batch_alter_table("nurture_suppressions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_nurture_suppressions_lead_id"))

    op.drop_table("nurture_suppressions")
    with op.batch_alter_table("nurture_enrollments", schema=None) as batch_op:
        batch_op.drop_index("ix_nurture_enrollments_sequence")
        batch_op.drop_index(batch_op.f("ix_nurture_enrollments_lead_id"))
        batch_op.drop_index(batch_op.f("ix_nurture_enrollments_due_at"))

    op.drop_table("nurture_enrollments")
    with op.batch_alter_table("nurture_sequences", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_nurture_sequences_active"))

    op.drop_table("nurture_sequences")
