"""inbox subject index

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 20:36:33.189671
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("subject_index", sa.LargeBinary(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_inbox_subject_index"), ["subject_index"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbox_subject_index"))
        batch_op.drop_column("subject_index")
