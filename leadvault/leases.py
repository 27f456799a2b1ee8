"""Claiming queued rows under a lease, shared by the outbox and the inbox.

A worker marks due rows as its own until ``now + lease``; on PostgreSQL the
select skips rows another worker is claiming (``FOR UPDATE SKIP LOCKED``);
SQLite lets one writer in at a time anyway. A worker that dies leaves its rows
to be claimed again once the lease has run out.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from leadvault import clock
from leadvault.db import dialect_of, settings_of

_MAX_BACKOFF = dt.timedelta(hours=6)
_MAX_DOUBLINGS = 64


@dataclasses.dataclass(frozen=True)
class Claim:
    """The rows a claim leased, and whether more were due than it took."""

    ids: list[int]
    more: bool


def claim(
    session: Session,
    model: Any,
    due: Callable[[dt.datetime], sa.ColumnElement[bool]],
    *,
    worker_id: str,
    limit: int,
    **mark: Any,
) -> list[int]:
    """Lease up to ``limit`` rows matching ``due(now)``; ``mark`` sets more columns."""
    return claim_batch(session, model, due, worker_id=worker_id, limit=limit, **mark).ids


def claim_batch(
    session: Session,
    model: Any,
    due: Callable[[dt.datetime], sa.ColumnElement[bool]],
    *,
    worker_id: str,
    limit: int,
    **mark: Any,
) -> Claim:
    """As ``claim``, and tells whether more rows were due: it selects one row beyond
    ``limit`` and leaves it as it was (on PostgreSQL locked only until the claim
    commits, so another worker skips it meanwhile and takes it after). A claimer told
    ``more=False`` need not claim again at once only to find nothing."""
    now = clock.now()
    lease = dt.timedelta(seconds=settings_of(session).outbox_lease_seconds)
    query = sa.select(model.id).where(due(now)).order_by(model.id).limit(limit + 1)
    if dialect_of(session) == "postgresql":
        query = query.with_for_update(skip_locked=True)
    found = list(session.scalars(query))
    ids = found[:limit]
    if ids:
        session.execute(
            sa.update(model)
            .where(model.id.in_(ids))
            .values(locked_by=worker_id, locked_until=now + lease, **mark)
            .execution_options(synchronize_session=False)
        )
    return Claim(ids, more=len(found) > limit)


def backoff(retry_seconds: float, attempts: int) -> dt.timedelta:
    """Exponential: ``retry_seconds`` after the first failure, doubling, at most 6 h,
    for an attempt count of any size (the exponent is capped before it overflows)."""
    cap = _MAX_BACKOFF.total_seconds()
    if retry_seconds <= 0:
        return dt.timedelta(0)
    # 2**_MAX_DOUBLINGS already exceeds any cap once retry_seconds is above 1 ns.
    exponent = min(max(attempts - 1, 0), _MAX_DOUBLINGS)
    return dt.timedelta(seconds=min(retry_seconds * 2.0**exponent, cap))
