"""Single-use tokens: signed links (data access, erasure) and bot-defence tokens (render
tokens, ALTCHA solutions). A key per token goes into ``spent_tokens`` on first use; the
table's unique key makes a second use fail in every process and on every node."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from leadvault import clock
from leadvault.models import SpentToken


def spend(session: Session, nonce: str, *, expires_at: dt.datetime) -> bool:
    """Mark the nonce used; False when it was used before (also under a race).

    ``expires_at``: when the token can no longer be valid, so its key may be forgotten.
    """
    return spend_all(session, [(nonce, expires_at)])


def spend_all(session: Session, keys: Sequence[tuple[str, dt.datetime]]) -> bool:
    """Mark every key used (a prepared INSERT each); False when any was used before."""
    if not keys:
        return True
    return spend_all_on(session.connection(), keys)


def spend_all_on(connection: sa.Connection, keys: Sequence[tuple[str, dt.datetime]]) -> bool:
    """:func:`spend_all` on a Core connection (the submission's write has no ORM session)."""
    statement = _SPEND[connection.dialect.name]
    now = clock.now()
    inserted = 0
    for key, until in keys:
        result = connection.execute(statement, {"nonce": key, "spent_at": now, "expires_at": until})
        inserted += result.rowcount
    return inserted == len(keys)


# Built once: a statement built per call is compiled per call (the submission's
# hottest cost before). Core on the session's connection, not the ORM's execute.
_SPEND = {
    "postgresql": postgresql.insert(SpentToken.__table__)
    .on_conflict_do_nothing(index_elements=["nonce"])
    # Without preserve_rowcount, SQLAlchemy 2.1 reports -1 for an INSERT on psycopg.
    .execution_options(preserve_rowcount=True),
    "sqlite": sqlite.insert(SpentToken.__table__).on_conflict_do_nothing(index_elements=["nonce"]),
}


def is_spent(session: Session, nonce: str) -> bool:
    return session.get(SpentToken, nonce) is not None


def forget_expired(session: Session, now: dt.datetime) -> int:
    """A key matters only while its token could still be valid; then it is noise."""
    result = session.execute(sa.delete(SpentToken).where(SpentToken.expires_at < now))
    return result.rowcount
