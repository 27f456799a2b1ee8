"""forms: title and intro text per language (the hosted page's h1 and the text under it)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 04:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("forms") as batch:
        batch.add_column(sa.Column("title", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("intro", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("forms") as batch:
        batch.drop_column("intro")
        batch.drop_column("title")
