"""Single-use signed links: a nonce in the token, spent on first use."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from leadvault import clock
from leadvault.db import dialect_of
from leadvault.models import SpentToken


def spend(session: Session, nonce: str) -> bool:
    """Mark the nonce used; False when it was used before (also under a race)."""
    insert = postgresql.insert if dialect_of(session) == "postgresql" else sqlite.insert
    statement = (
        insert(SpentToken)
        .values(nonce=nonce, spent_at=clock.now())
        .on_conflict_do_nothing(index_elements=["nonce"])
        # Without preserve_rowcount, SQLAlchemy 2.1 reports -1 for an INSERT on psycopg.
        .execution_options(preserve_rowcount=True)
    )
    return session.execute(statement).rowcount == 1


def is_spent(session: Session, nonce: str) -> bool:
    return session.get(SpentToken, nonce) is not None


def forget_older_than(session: Session, cutoff: dt.datetime) -> int:
    """Nonces outlive their tokens' maximum age only; then they are noise."""
    result = session.execute(sa.delete(SpentToken).where(SpentToken.spent_at < cutoff))
    return result.rowcount
