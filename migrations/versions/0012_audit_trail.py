"""audit trail: append-only, hash-chained record of looks at personal data and changes

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 00:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_trail",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("object_type", sa.String(length=40), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("ip_prefix", sa.String(length=64), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_trail")),
        sa.UniqueConstraint("entry_hash", name=op.f("uq_audit_trail_entry_hash")),
    )
    with op.batch_alter_table("audit_trail", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_trail_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_trail_actor"), ["actor"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_trail_action"), ["action"], unique=False)
        batch_op.create_index("ix_audit_trail_object", ["object_type", "object_id"], unique=False)
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    head = sa.table("audit_head", sa.column("id"), sa.column("last_id"), sa.column("last_hash"))
    op.bulk_insert(head, [{"id": 1, "last_id": 0, "last_hash": "0" * 64}])


def downgrade() -> None:
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_trail", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_trail_object")
        batch_op.drop_index(batch_op.f("ix_audit_trail_action"))
        batch_op.drop_index(batch_op.f("ix_audit_trail_actor"))
        batch_op.drop_index(batch_op.f("ix_audit_trail_created_at"))
    op.drop_table("audit_trail")
