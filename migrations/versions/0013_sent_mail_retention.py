"""sent mails lose their bodies after LEADVAULT_SENT_MAIL_RETENTION_DAYS: the payload may be empty

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 00:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column("payload", existing_type=sa.LargeBinary(), nullable=True)


def downgrade() -> None:
    outbox = sa.table("outbox", sa.column("payload", sa.LargeBinary))
    # A body deleted by the retention cannot come back: an empty one stands in.
    op.execute(outbox.update().where(outbox.c.payload.is_(None)).values(payload=b""))
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column("payload", existing_type=sa.LargeBinary(), nullable=False)
