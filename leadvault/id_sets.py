"""A set of ids as one bound parameter, for statements compiled once.

``column IN (:a, :b, …)`` has a parameter per id: its SQL differs with their number,
so it is compiled again, and every id is coerced, rendered and bound one by one — on
SQLite inside the write lock every writer queues for. Here the set is one parameter
named ``ids`` whatever its size: on SQLite a JSON array read by ``json_each``, on
PostgreSQL an array (``= ANY``). Used for the worker's batch statements (the mail
stage's claim, read and record, the inbox batch's DELETE and receipts, the rollup's
settle).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

NAME = "ids"


def one_of(column: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[bool]:
    """``column`` is one of the ids bound as ``ids`` (their value: :func:`value`)."""
    if dialect == "sqlite":
        return column.in_(listed())
    return column == sa.any_(sa.bindparam(NAME, type_=postgresql.ARRAY(column.type)))


def listed() -> sa.Select[Any]:
    """SQLite: the ids bound as ``ids``, one row each (``value``)."""
    return sa.select(sa.column("value")).select_from(
        sa.func.json_each(sa.bindparam(NAME, type_=sa.String))
    )


def value(ids: Iterable[int | uuid.UUID], dialect: str) -> str | list[Any]:
    """The ``ids`` parameter's value: on SQLite one JSON array of the ids as SQLite
    stores them (a UUID as its 32 hex digits), elsewhere a list."""
    if dialect == "sqlite":
        return json.dumps([i.hex if isinstance(i, uuid.UUID) else i for i in ids])
    return list(ids)
