"""export: imported contacts waiting for their re-permission mail

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 00:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "import_repermissions",
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("purposes", sa.JSON(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("batch", sa.String(length=16), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_import_repermissions_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_import_repermissions")),
    )
    with op.batch_alter_table("import_repermissions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_import_repermissions_queued_at"), ["queued_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_import_repermissions_requested_at"), ["requested_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("import_repermissions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_import_repermissions_requested_at"))
        batch_op.drop_index(batch_op.f("ix_import_repermissions_queued_at"))
    op.drop_table("import_repermissions")
