"""salespeople: name and address sealed, found by blind index

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 20:46:03.999148
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No release stored salespeople in plaintext; a development database that did
    # must re-add them (`leadvault sales add`) rather than have them copied here.
    rows = op.get_bind().execute(sa.text("SELECT COUNT(*) FROM sales_people")).scalar()
    if rows:
        raise RuntimeError(
            "sales_people holds unsealed rows: delete them, upgrade, then re-add them "
            "with `leadvault sales add`"
        )
    with op.batch_alter_table("sales_people", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_index", sa.LargeBinary(length=32), nullable=False))
        batch_op.add_column(sa.Column("payload", sa.LargeBinary(), nullable=False))
        batch_op.add_column(sa.Column("payload_owner", sa.String(length=64), nullable=False))
        batch_op.add_column(sa.Column("payload_key", sa.LargeBinary(), nullable=False))
        batch_op.add_column(sa.Column("payload_key_version", sa.Integer(), nullable=False))
        batch_op.drop_constraint(batch_op.f("uq_sales_people_email"), type_="unique")
        batch_op.create_index(
            batch_op.f("ix_sales_people_payload_key_version"), ["payload_key_version"], unique=False
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_sales_people_email_index"), ["email_index"]
        )
        batch_op.drop_column("name")
        batch_op.drop_column("email")


def downgrade() -> None:
    with op.batch_alter_table("sales_people", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email", sa.VARCHAR(length=255), nullable=False))
        batch_op.add_column(sa.Column("name", sa.VARCHAR(length=120), nullable=False))
        batch_op.drop_constraint(batch_op.f("uq_sales_people_email_index"), type_="unique")
        batch_op.drop_index(batch_op.f("ix_sales_people_payload_key_version"))
        batch_op.create_unique_constraint(batch_op.f("uq_sales_people_email"), ["email"])
        batch_op.drop_column("payload_key_version")
        batch_op.drop_column("payload_key")
        batch_op.drop_column("payload_owner")
        batch_op.drop_column("payload")
        batch_op.drop_column("email_index")
