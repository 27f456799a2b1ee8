"""api tokens and spent links

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 19:43:39.610552
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_api_tokens_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "spent_tokens",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("spent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_spent_tokens")),
    )
    with op.batch_alter_table("spent_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_spent_tokens_spent_at"), ["spent_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("spent_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_spent_tokens_spent_at"))

    op.drop_table("spent_tokens")
    op.drop_table("api_tokens")
