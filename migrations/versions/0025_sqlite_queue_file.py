"""SQLite: the inbox and the spent single-use keys move to the queue file

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06 01:30:00.000000
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

# As leadvault.sqlite_writer names them; a migration keeps its own copy.
QUEUE_SCHEMA = "queue"
QUEUE_TABLES = ("inbox", "spent_tokens")


def upgrade() -> None:
    # The public endpoint writes only these tables. In a file of their own (attached to
    # every connection, leadvault.sqlite_writer) a submission takes that file's write
    # lock, not the one the worker holds while it stores a batch of leads. PostgreSQL
    # locks rows, not the database: nothing moves there.
    _move(source="main", target=QUEUE_SCHEMA)


def downgrade() -> None:
    _move(source=QUEUE_SCHEMA, target="main")


def _move(*, source: str, target: str) -> None:
    # The schema and table names below are this module's constants, not input.
    bind = op.get_bind()
    if bind.dialect.name != "sqlite" or not _attached(bind):
        return  # PostgreSQL, or an in-memory SQLite database: one file
    for table in QUEUE_TABLES:
        create = bind.exec_driver_sql(
            f"SELECT sql FROM {source}.sqlite_master WHERE type = 'table' AND name = ?",  # noqa: S608
            (table,),
        ).scalar()
        if create is None:
            continue  # moved already
        indexes = bind.exec_driver_sql(
            f"SELECT name, sql FROM {source}.sqlite_master "  # noqa: S608
            "WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
            (table,),
        ).all()
        bind.exec_driver_sql(_qualified(create, "TABLE", table, target))
        copy = f'INSERT INTO {target}."{table}" SELECT * FROM {source}."{table}"'  # noqa: S608
        bind.exec_driver_sql(copy)
        bind.exec_driver_sql(f'DROP TABLE {source}."{table}"')
        for name, sql in indexes:
            bind.exec_driver_sql(_qualified(sql, "INDEX", name, target))


def _qualified(create: str, kind: str, name: str, schema: str) -> str:
    """``CREATE TABLE inbox (…)`` as ``CREATE TABLE queue."inbox" (…)`` (the statement
    SQLite kept; its name may be quoted)."""
    pattern = (
        rf'^\s*CREATE\s+(UNIQUE\s+)?{kind}\s+(?:"{re.escape(name)}"|{re.escape(name)})(?=[\s(])'
    )
    qualified, count = re.subn(
        pattern,
        lambda match: f'CREATE {match.group(1) or ""}{kind} {schema}."{name}"',
        create,
        count=1,
        flags=re.IGNORECASE,
    )
    if count != 1:
        raise RuntimeError(f"unexpected schema of {name}: {create[:80]!r}")
    return qualified


def _attached(bind: sa.Connection) -> bool:
    names = {row[1] for row in bind.exec_driver_sql("PRAGMA database_list")}
    return QUEUE_SCHEMA in names
