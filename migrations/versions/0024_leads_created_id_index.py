"""leads by creation time and id: the export's and the lead list's order from one index

Revision ID: 0024
Revises: 0021
Create Date: 2026-12-02 12:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0024"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Exports (and the console's list) order leads by (created_at, id). With the id in
    # the index, SQLite walks it in that order (and reads the ids from it) instead of
    # sorting every run of leads created in the same microsecond; it replaces the
    # created_at index, which it serves as well, so writes maintain one index, not two.
    op.create_index("ix_leads_created_at_id", "leads", ["created_at", "id"])
    op.drop_index("ix_leads_created_at", table_name="leads")


def downgrade() -> None:
    op.create_index("ix_leads_created_at", "leads", ["created_at"])
    op.drop_index("ix_leads_created_at_id", table_name="leads")
