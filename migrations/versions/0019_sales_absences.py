"""sales absences: whole days a salesperson is away, skipped by routing

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 04:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sales_absences",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["sales_people.id"],
            name=op.f("fk_sales_absences_person_id_sales_people"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sales_absences")),
    )
    # Routing asks "is this person away today?": by person, over the days not yet over.
    op.create_index(
        "ix_sales_absences_person_ends", "sales_absences", ["person_id", "ends_on"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_sales_absences_person_ends", table_name="sales_absences")
    op.drop_table("sales_absences")
