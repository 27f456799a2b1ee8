"""The mail stage's writes: claiming due mails on SQLite and recording outcomes, each in
one short transaction of set-based statements.

On SQLite every write transaction holds the database's one write lock, which the
public capture endpoint queues for (``sqlite_writer._WriterQueue``, issue 13.3). So
whatever can be done before the transaction begins is: the statements are built and
their parameters computed first, and inside it each is one statement for the whole
batch. The ids go to SQLite as one JSON array (``json_each``) rather than a
parameter per id: the statement's text and compiled form are the same for every
batch, and no id is coerced, rendered and bound while the lock is held. PostgreSQL
has no such lock (its writers do not wait for each other's rows here) and gets the
same statements with an IN list; its recorders first lock the rows in id order, so
two workers recording the same rows (a lease that ran out) cannot deadlock.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from leadvault import clock, leases, outbox
from leadvault.db import settings_of, unit_of_work
from leadvault.models import OutboxAttempt, OutboxKind, OutboxMessage, OutboxStatus
from leadvault.smtp import DeliveryError

log = logging.getLogger("leadvault.outbox")

# A held marketing mail is looked at again after this long.
MARKETING_HOLD_SECONDS = 900.0

_OUTBOX = OutboxMessage.__table__
_ATTEMPTS = OutboxAttempt.__table__


class Outcome(Protocol):
    """What recording needs of a claimed mail (``mail_delivery._Claimed``)."""

    @property
    def id(self) -> int: ...

    @property
    def template(self) -> str: ...

    @property
    def held(self) -> str | None: ...


def claim_sqlite(session: Session, *, worker_id: str, limit: int) -> leases.Claim:
    """``leases.claim_batch`` for the mail on SQLite, in two statements: one UPDATE
    marks the first ``limit`` due mails (found by its subquery) as the worker's and
    returns their ids, then one read asks whether any mail is still due (ours are not:
    their lease has just begun). Before, a SELECT of ``limit + 1`` ids came back to
    Python and an UPDATE took them again, one parameter each, all under the lock."""
    now = clock.now()
    lease = dt.timedelta(seconds=settings_of(session).outbox_lease_seconds)
    due = outbox.due(OutboxKind.MAIL)
    first = sa.select(_OUTBOX.c.id).where(due(now)).order_by(_OUTBOX.c.id).limit(limit)
    mark = (
        sa.update(_OUTBOX)
        .where(_OUTBOX.c.id.in_(first))
        .values(status=OutboxStatus.SENDING, locked_by=worker_id, locked_until=now + lease)
        .returning(_OUTBOX.c.id)
    )
    more = sa.select(sa.exists().where(due(now)))
    connection = session.connection()  # SQLite's write lock from here
    ids = sorted(connection.scalars(mark))
    return leases.Claim(ids, more=bool(connection.scalar(more)))


def _among(ids: Sequence[int], dialect: str) -> sa.ColumnElement[bool]:
    """``outbox.id`` is one of ``ids``: on SQLite one JSON parameter (see the module)."""
    if dialect == "sqlite":
        listed = sa.select(sa.column("value", sa.Integer)).select_from(
            sa.func.json_each(sa.literal(json.dumps(list(ids)), sa.String))
        )
        return _OUTBOX.c.id.in_(listed)
    return _OUTBOX.c.id.in_(ids)


def record(
    factory: sessionmaker[Session],
    results: Sequence[tuple[Outcome, DeliveryError | None]],
    *,
    worker_id: str,
) -> int:
    """Record a batch of outcomes in one transaction; returns how many were sent.

    The mails sent (the usual case) take two statements whatever their number: one
    UPDATE marks them sent and one INSERT … SELECT writes their attempts, for the rows
    still there (a row erased meanwhile is gone and gets no attempt). Failures and
    held mails, each with its own next step, are decided row by row (``_others``)."""
    if not results:
        return 0
    succeeded = sorted({item.id for item, error in results if error is None and item.held is None})
    sent_ids = set(succeeded)
    others = [(item, error) for item, error in results if item.id not in sent_ids]
    dialect = factory.kw["bind"].dialect.name
    now = clock.now()
    # Built before the transaction begins: on SQLite it holds the write lock.
    mark_sent = attempts = None
    if succeeded:
        among = _among(succeeded, dialect)
        # Sent is sent, whoever holds the lease now.
        mark_sent = (
            sa.update(_OUTBOX)
            .where(among)
            .values(
                status=OutboxStatus.SENT,
                sent_at=now,
                last_error=None,
                locked_by=None,
                locked_until=None,
                attempts=_OUTBOX.c.attempts + 1,
            )
        )
        attempts = sa.insert(_ATTEMPTS).from_select(
            ["outbox_id", "worker", "attempted_at", "error"],
            sa.select(
                _OUTBOX.c.id,
                sa.literal(worker_id, _ATTEMPTS.c.worker.type),
                sa.literal(now, _ATTEMPTS.c.attempted_at.type),
                sa.null(),
            )
            .where(among)
            .order_by(_OUTBOX.c.id),
        )
    locking = (
        sa.select(_OUTBOX.c.id)
        .where(_OUTBOX.c.id.in_(sorted(item.id for item, _error in results)))
        .order_by(_OUTBOX.c.id)
        .with_for_update()
        if dialect == "postgresql"
        else None
    )
    sent = len(succeeded)
    with unit_of_work(factory) as session:
        connection = session.connection()  # SQLite's write lock from here
        if locking is not None:
            # Locked in id order, as every recorder locks them (no deadlock between
            # workers); SQLite has one writer at a time.
            connection.execute(locking).all()
        if mark_sent is not None and attempts is not None:
            connection.execute(mark_sent)
            connection.execute(attempts)
        if others:
            sent += _others(session, others, worker_id=worker_id, now=now)
    log.info("sent %s of %s mails", sent, len(results))
    return sent


def _others(
    session: Session,
    others: list[tuple[Outcome, DeliveryError | None]],
    *,
    worker_id: str,
    now: dt.datetime,
) -> int:
    """Record the outcomes of mails not simply sent: held (back to the queue, uncounted),
    failed (retried later, or given up), or sent after our lease lapsed. Returns how
    many of them were sent."""
    settings = settings_of(session)
    rows = {
        row.id: row
        for row in session.scalars(
            sa.select(OutboxMessage).where(OutboxMessage.id.in_([item.id for item, _ in others]))
        )
    }
    sent = 0
    attempts = []
    for item, error in others:
        row = rows.get(item.id)
        if row is None:
            continue
        if item.held is not None:
            row.status = OutboxStatus.PENDING
            row.locked_by = row.locked_until = None
            row.next_attempt_at = now + dt.timedelta(seconds=MARKETING_HOLD_SECONDS)
            row.last_error = f"held: {item.held}"
            log.warning("marketing mail outbox=%s held: branding incomplete", row.id)
            continue
        # False when our lease ran out mid-send and another worker re-claimed
        # (or already sent) the row.
        still_ours = row.status == OutboxStatus.SENDING and row.locked_by == worker_id
        row.attempts += 1
        attempts.append(
            OutboxAttempt(
                outbox_id=row.id,
                worker=worker_id,
                attempted_at=now,
                error=None if error is None else str(error),
            )
        )
        if error is not None and not still_ours:
            # The current holder's outcome decides; a late failure must not
            # undo its send or release its lease.
            log.info("late failure outbox=%s after lease lapsed: %s", row.id, error)
            continue
        row.locked_by = None
        row.locked_until = None
        if error is None:
            row.status = OutboxStatus.SENT
            row.sent_at = now
            row.last_error = None
            sent += 1
            continue
        row.last_error = str(error)
        if error.permanent or row.attempts >= settings.outbox_max_attempts:
            row.status = OutboxStatus.FAILED
            log.warning("gave up outbox=%s template=%s: %s", row.id, item.template, error)
        else:
            row.status = OutboxStatus.PENDING
            row.next_attempt_at = now + leases.backoff(settings.outbox_retry_seconds, row.attempts)
            log.info("retry outbox=%s at %s: %s", row.id, row.next_attempt_at, error)
    session.add_all(attempts)
    return sent
