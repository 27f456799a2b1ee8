"""The mail stage's writes: claiming due mails on SQLite and recording outcomes, each in
one short transaction of set-based statements.

On SQLite every write transaction holds the database's one write lock, which the
public capture endpoint queues for (``sqlite_writer._WriterQueue``, issue 13.3). So
whatever can be done before the transaction begins is: the statements are compiled
once (``prepared.Prepared``), their parameters bound first, and inside it each is one
statement for the whole batch, run on the driver's cursor. The ids go to SQLite as
one JSON array (``json_each``) rather than a parameter per id: the statement is the
same for every batch, and no id is coerced, rendered and bound while the lock is
held. PostgreSQL has no such lock (its writers do not wait for each other's rows
here) and gets the same statements with the ids as one array (``= ANY``); its
recorders first lock the rows in id order, so two workers recording the same rows (a
lease that ran out) cannot deadlock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
from collections.abc import Sequence
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session, sessionmaker

from leadvault import clock, id_sets, leases, outbox, sqlite_writer
from leadvault.db import settings_of, unit_of_work
from leadvault.models import OutboxAttempt, OutboxKind, OutboxMessage, OutboxStatus
from leadvault.prepared import Prepared
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
    their lease has just begun). Both are compiled once and bound before the write
    lock is taken (``_claim_on``)."""
    now = clock.now()
    lease = dt.timedelta(seconds=settings_of(session).outbox_lease_seconds)
    dialect = session.get_bind().dialect
    mark, more = _claim_on(dialect)
    marking = mark.bind(
        {"now": now, "limit": limit, "worker": worker_id, "locked_until": now + lease}
    )
    asking = more.bind({"now": now})
    connection = session.connection()  # SQLite's write lock from here
    ids = sorted(row[0] for row in marking.all(connection))
    found = asking.first(connection)
    return leases.Claim(ids, more=bool(found and found[0]))


@functools.lru_cache(maxsize=8)
def _claim_on(dialect: Dialect) -> tuple[Prepared, Prepared]:
    """The SQLite claim's two statements, compiled once and run on the driver's cursor:
    built and executed by SQLAlchemy each batch, they cost more CPU than SQLite's own
    work (the due condition alone is a dozen ORM comparisons to build)."""
    now = sa.bindparam("now", type_=_OUTBOX.c.next_attempt_at.type)
    due = outbox.due(OutboxKind.MAIL)(now)
    first = (
        sa.select(_OUTBOX.c.id)
        .where(due)
        .order_by(_OUTBOX.c.id)
        .limit(sa.bindparam("limit", type_=sa.Integer))
    )
    mark = _mark_claimed(_OUTBOX.c.id.in_(first)).returning(_OUTBOX.c.id)
    more = sa.select(sa.exists().where(due))
    return Prepared(mark, dialect), Prepared(more, dialect)


def claim_postgresql(session: Session, *, worker_id: str, limit: int) -> leases.Claim:
    """``leases.claim_batch`` for the mail on PostgreSQL, the same two statements (the
    due ids ``FOR UPDATE SKIP LOCKED``, one beyond ``limit``; then the UPDATE of the
    first ``limit``) compiled once and bound outside SQLAlchemy's execution
    (``_postgresql_claim_on``)."""
    now = clock.now()
    lease = dt.timedelta(seconds=settings_of(session).outbox_lease_seconds)
    dialect = session.get_bind().dialect
    select_due, mark = _postgresql_claim_on(dialect)
    connection = session.connection()
    # One beyond the limit: it stays as it was, locked until this claim commits.
    found = [row[0] for row in select_due.bind({"now": now, "limit": limit + 1}).all(connection)]
    ids = found[:limit]
    if ids:
        values = {"ids": id_sets.value(ids, dialect.name), "worker": worker_id}
        mark.bind({**values, "locked_until": now + lease}).rowcount(connection)
    return leases.Claim(ids, more=len(found) > limit)


@functools.lru_cache(maxsize=8)
def _postgresql_claim_on(dialect: Dialect) -> tuple[Prepared, Prepared]:
    now = sa.bindparam("now", type_=_OUTBOX.c.next_attempt_at.type)
    select_due = (
        sa.select(_OUTBOX.c.id)
        .where(outbox.due(OutboxKind.MAIL)(now))
        .order_by(_OUTBOX.c.id)
        .limit(sa.bindparam("limit", type_=sa.Integer))
        .with_for_update(skip_locked=True)
    )
    mark = _mark_claimed(id_sets.one_of(_OUTBOX.c.id, dialect.name))
    return Prepared(select_due, dialect), Prepared(mark, dialect)


def _mark_claimed(which: sa.ColumnElement[bool]) -> sa.Update:
    """The claim's UPDATE of the rows ``which`` selects: sending, under the worker's lease."""
    return (
        sa.update(_OUTBOX)
        .where(which)
        .values(
            status=OutboxStatus.SENDING,
            locked_by=sa.bindparam("worker", type_=_OUTBOX.c.locked_by.type),
            locked_until=sa.bindparam("locked_until", type_=_OUTBOX.c.locked_until.type),
        )
    )


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
    dialect = factory.kw["bind"].dialect
    statements = _record_on(dialect)
    now = clock.now()
    # Bound before the transaction begins: on SQLite it holds the write lock.
    writes = []
    if succeeded:
        ids = id_sets.value(succeeded, dialect.name)
        # Sent is sent, whoever holds the lease now.
        writes.append(statements.mark_sent.bind({"ids": ids, "now": now}))
        writes.append(statements.attempts.bind({"ids": ids, "now": now, "worker": worker_id}))
    locking = (
        statements.locking.bind({"ids": sorted(item.id for item, _error in results)})
        if statements.locking is not None
        else None
    )
    sent = len(succeeded)
    with unit_of_work(factory) as session:
        sqlite_writer.writes(session, sqlite_writer.MAIN)  # the outbox: not the queue file's lock
        connection = session.connection()  # SQLite's write lock from here
        if locking is not None:
            # Locked in id order, as every recorder locks them (no deadlock between
            # workers); SQLite has one writer at a time.
            locking.all(connection)
        for write in writes:
            write.rowcount(connection)
        if others:
            sent += _others(session, others, worker_id=worker_id, now=now)
    log.info("sent %s of %s mails", sent, len(results))
    return sent


@dataclasses.dataclass(frozen=True)
class _Recording:
    """The record's statements for one dialect (``_record_on``)."""

    mark_sent: Prepared
    attempts: Prepared
    locking: Prepared | None  # PostgreSQL: the rows locked in id order first


@functools.lru_cache(maxsize=8)
def _record_on(dialect: Dialect) -> _Recording:
    """The record's statements, compiled once and run on the driver's cursor. The ids
    are one parameter (``leadvault.id_sets``): the same statement for every batch."""
    among = id_sets.one_of(_OUTBOX.c.id, dialect.name)
    mark_sent = (
        sa.update(_OUTBOX)
        .where(among)
        .values(
            status=OutboxStatus.SENT,
            sent_at=sa.bindparam("now", type_=_OUTBOX.c.sent_at.type),
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
            sa.bindparam("worker", type_=_ATTEMPTS.c.worker.type),
            sa.bindparam("now", type_=_ATTEMPTS.c.attempted_at.type),
            sa.null(),
        )
        .where(among)
        .order_by(_OUTBOX.c.id),
    )
    locking = (
        sa.select(_OUTBOX.c.id).where(among).order_by(_OUTBOX.c.id).with_for_update()
        if dialect.name == "postgresql"
        else None
    )
    return _Recording(
        Prepared(mark_sent, dialect),
        Prepared(attempts, dialect),
        Prepared(locking, dialect) if locking is not None else None,
    )


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
