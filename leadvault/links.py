"""Single-use tokens: signed links (data access, erasure) and bot-defence tokens (render
tokens, ALTCHA solutions). A key per token goes into ``spent_tokens`` on first use; the
table's unique key makes a second use fail in every process and on every node."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from leadvault import clock
from leadvault.models import SpentToken
from leadvault.prepared import Bound, Prepared


def spend(session: Session, nonce: str, *, expires_at: dt.datetime) -> bool:
    """Mark the nonce used; False when it was used before (also under a race).

    ``expires_at``: when the token can no longer be valid, so its key may be forgotten.
    """
    return spend_all(session, [(nonce, expires_at)])


def spend_all(session: Session, keys: Sequence[tuple[str, dt.datetime]]) -> bool:
    """Mark every key used (a prepared INSERT each); False when any was used before."""
    if not keys:
        return True
    connection = session.connection()
    return spend_bound(connection, spending(connection.dialect, keys))


def spending(dialect: Dialect, keys: Sequence[tuple[str, dt.datetime]]) -> list[Bound]:
    """The INSERTs that spend ``keys``, their parameters bound for ``dialect``: built
    before the write (the submission's: on SQLite, outside the write lock)."""
    statement = _spend_on(dialect)
    now = clock.now()
    return [
        statement.bind({"nonce": key, "spent_at": now, "expires_at": until}) for key, until in keys
    ]


def spend_bound(connection: sa.Connection, inserts: Sequence[Bound]) -> bool:
    """Run :func:`spending`'s INSERTs (each on the driver's cursor); False when any
    key was spent before. Every one runs: a replay's fresh keys are spent too."""
    inserted = 0
    for insert in inserts:
        inserted += insert.rowcount(connection)
    return inserted == len(inserts)


@functools.lru_cache(maxsize=8)
def _spend_on(dialect: Dialect) -> Prepared:
    # Compiled once per dialect (a statement built per call was compiled per call: the
    # submission's hottest cost before), run on the driver's cursor.
    insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
    statement = insert(SpentToken.__table__).on_conflict_do_nothing(index_elements=["nonce"])
    return Prepared(statement, dialect)


def is_spent(session: Session, nonce: str) -> bool:
    return session.get(SpentToken, nonce) is not None


def forget_expired(session: Session, now: dt.datetime) -> int:
    """A key matters only while its token could still be valid; then it is noise."""
    result = session.execute(sa.delete(SpentToken).where(SpentToken.expires_at < now))
    return result.rowcount
