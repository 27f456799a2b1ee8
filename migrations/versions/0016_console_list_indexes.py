"""indexes for the console's lead list: leads by creation time, scoring states by score

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 01:30:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The list is newest first (or highest score first) one page at a time: an index
    # walked from its end answers a page without sorting every lead.
    op.create_index("ix_leads_created_at", "leads", ["created_at"])
    op.create_index("ix_lead_scores_score", "lead_scores", ["score"])


def downgrade() -> None:
    op.drop_index("ix_lead_scores_score", table_name="lead_scores")
    op.drop_index("ix_leads_created_at", table_name="leads")
