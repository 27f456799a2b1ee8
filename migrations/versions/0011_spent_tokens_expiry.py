"""spent tokens expire: one store for single-use links and bot-defence tokens

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 21:30:00.000000
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# Rows from before this revision were access and erasure links, valid at most
# LEADVAULT_PREFS_LINK_HOURS (720 hours at most): keep them that long.
_LEGACY_LIFETIME = dt.timedelta(days=31)


def upgrade() -> None:
    with op.batch_alter_table("spent_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    spent = sa.table(
        "spent_tokens",
        sa.column("nonce", sa.String),
        sa.column("spent_at", sa.DateTime(timezone=True)),
        sa.column("expires_at", sa.DateTime(timezone=True)),
    )
    connection = op.get_bind()
    for nonce, spent_at in connection.execute(sa.select(spent.c.nonce, spent.c.spent_at)).all():
        connection.execute(
            spent.update()
            .where(spent.c.nonce == nonce)
            .values(expires_at=spent_at + _LEGACY_LIFETIME)
        )
    with op.batch_alter_table("spent_tokens", schema=None) as batch_op:
        batch_op.alter_column(
            "expires_at", existing_type=sa.DateTime(timezone=True), nullable=False
        )
        batch_op.drop_index(batch_op.f("ix_spent_tokens_spent_at"))
        batch_op.create_index(
            batch_op.f("ix_spent_tokens_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("spent_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_spent_tokens_expires_at"))
        batch_op.create_index(batch_op.f("ix_spent_tokens_spent_at"), ["spent_at"], unique=False)
        batch_op.drop_column("expires_at")
