"""Daily counters for things we count but never store details of (bots, unknown events)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from leadvault import clock
from leadvault.db import dialect_of
from leadvault.models import Counter


def increment(session: Session, name: str, by: int = 1) -> None:
    insert = postgresql.insert if dialect_of(session) == "postgresql" else sqlite.insert
    statement = insert(Counter).values(name=name, day=clock.now().date(), value=by)
    statement = statement.on_conflict_do_update(
        index_elements=["name", "day"], set_={"value": Counter.value + by}
    )
    session.execute(statement)


def total(session: Session, name: str) -> int:
    return session.scalar(sa.select(sa.func.sum(Counter.value)).where(Counter.name == name)) or 0
