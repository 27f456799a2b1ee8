"""widgets: gated assets and their forms

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage", sa.String(length=16), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("download_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assets")),
        sa.UniqueConstraint("public_id", name=op.f("uq_assets_public_id")),
    )
    op.create_table(
        "form_assets",
        sa.Column("form_id", sa.Integer(), nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["assets.id"],
            name=op.f("fk_form_assets_asset_id_assets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["form_id"], ["forms.id"], name=op.f("fk_form_assets_form_id_forms"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("form_id", name=op.f("pk_form_assets")),
    )
    with op.batch_alter_table("form_assets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_form_assets_asset_id"), ["asset_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("form_assets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_form_assets_asset_id"))
    op.drop_table("form_assets")
    op.drop_table("assets")
