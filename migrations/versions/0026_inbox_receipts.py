"""inbox receipts: a batch's items are stored once although SQLite commits two files

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06 04:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

# As leadvault.sqlite_writer names it; a migration keeps its own copy.
QUEUE_SCHEMA = "queue"

# The inbox's columns as of this revision (a migration keeps its own copy), the id
# column and primary key left to _create.
_COLUMNS = """
    kind VARCHAR(40) NOT NULL,
    received_at DATETIME NOT NULL,
    payload BLOB NOT NULL,
    payload_owner VARCHAR(64) NOT NULL,
    payload_key BLOB NOT NULL,
    payload_key_version INTEGER NOT NULL,
    status VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at DATETIME NOT NULL,
    locked_by VARCHAR(64),
    locked_until DATETIME,
    last_error VARCHAR(200),
    subject_index BLOB"""
_COLUMN_NAMES = (
    "id, kind, received_at, payload, payload_owner, payload_key, payload_key_version, "
    "status, attempts, next_attempt_at, locked_by, locked_until, last_error, subject_index"
)
_INDEXES = {
    "ix_inbox_due": "status, next_attempt_at",
    "ix_inbox_payload_key_version": "payload_key_version",
    "ix_inbox_subject_index": "subject_index",
}


def upgrade() -> None:
    # A batch's leads (main file) and its items' DELETE (queue file) commit one after
    # the other on SQLite; a receipt written with the leads keeps an item whose DELETE
    # was lost from being stored twice (leadvault.inbox). PostgreSQL has one commit and
    # writes none; the table exists there too so that both have one schema.
    op.create_table(
        "inbox_receipts",
        sa.Column("item_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("item_id", name=op.f("pk_inbox_receipts")),
    )
    # A receipt names an item by its id: SQLite must never give an id twice, which it
    # does without AUTOINCREMENT (the highest id again once that item is deleted).
    _rebuild_inbox(autoincrement=True)


def downgrade() -> None:
    _rebuild_inbox(autoincrement=False)
    op.drop_table("inbox_receipts")


def _rebuild_inbox(*, autoincrement: bool) -> None:
    # SQLite cannot change a column's key in place: a new table, the rows copied, the
    # old one dropped (secure_delete zeroes its pages), the indexes made again. The
    # schema, table and index names below are this module's constants, not input.
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    schema = QUEUE_SCHEMA if _in_queue_file(bind) else "main"
    create = bind.exec_driver_sql(
        f"SELECT sql FROM {schema}.sqlite_master WHERE type = 'table' AND name = 'inbox'"  # noqa: S608
    ).scalar_one()
    if ("AUTOINCREMENT" in create.upper()) == autoincrement:
        return
    if autoincrement:
        key = "id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,"
        constraint = ""
    else:
        key = "id INTEGER NOT NULL,"
        constraint = ",\n    CONSTRAINT pk_inbox PRIMARY KEY (id)"
    bind.exec_driver_sql(
        f'CREATE TABLE {schema}."inbox_0026" (\n    {key}{_COLUMNS}{constraint}\n)'
    )
    bind.exec_driver_sql(
        f'INSERT INTO {schema}."inbox_0026" ({_COLUMN_NAMES}) '  # noqa: S608
        f'SELECT {_COLUMN_NAMES} FROM {schema}."inbox"'
    )
    bind.exec_driver_sql(f'DROP TABLE {schema}."inbox"')
    bind.exec_driver_sql(f'ALTER TABLE {schema}."inbox_0026" RENAME TO "inbox"')
    for name, columns in _INDEXES.items():
        bind.exec_driver_sql(f'CREATE INDEX {schema}."{name}" ON "inbox" ({columns})')


def _in_queue_file(bind: sa.Connection) -> bool:
    """Whether the inbox is in the attached queue file (0025), not in-memory's one file."""
    names = {row[1] for row in bind.exec_driver_sql("PRAGMA database_list")}
    if QUEUE_SCHEMA not in names:
        return False
    found = bind.exec_driver_sql(
        f"SELECT 1 FROM {QUEUE_SCHEMA}.sqlite_master WHERE type = 'table' AND name = 'inbox'"  # noqa: S608
    ).first()
    return found is not None
