"""The inbox: work accepted by a request (``leadvault.inbox_queueing``), done by the
worker in batches.

A worker takes up to ``LEADVAULT_WORKER_BATCH_SIZE`` due items (``SKIP LOCKED``
on PostgreSQL, so any number of workers share the queue) and stores them in
one transaction (see ``leadvault.batch``): first optimistically, the handlers'
rows written together at the batch's end (no savepoint, no flush per item);
should a handler fail, the batch starts again with each item in a savepoint of
its own, so the failing one is rolled back alone, retried with backoff, and
its error type is recorded, never its message (it may quote personal data).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from leadvault import batch, clock, id_sets, inbox_queueing, leases
from leadvault.db import dialect_of, settings_of, unit_of_work, vault_of
from leadvault.models import InboxItem, InboxReceipt, InboxStatus
from leadvault.sealed import SealedPayload, unseal
from leadvault.sqlite_writer import (
    StaleSnapshot,
    begin_snapshot,
    forget_reads,
    lock_queue,
    write_lock_since,
)

log = logging.getLogger("leadvault.inbox")

Handler = Callable[[Session, dict[str, Any]], None]


def _due(now: dt.datetime, *, by_id: bool = False) -> sa.ColumnElement[bool]:
    """Items due at ``now``. ``by_id`` (SQLite, the first due items in id order): the
    status is compared as ``status || ''``, which no index serves, so that SQLite walks
    the table in id order and stops at the limit; through ``ix_inbox_due`` it read every
    due item and sorted them all to keep the first hundred, a batch's read growing with
    the backlog (~0.3 ms at 1 000 queued, ~7 ms at 20 000). The same items either way;
    the walk passes the items not due that come first (failed ones kept, retries waiting)."""
    status = InboxItem.status.concat("") if by_id else InboxItem.status
    return sa.and_(
        status == InboxStatus.PENDING,
        InboxItem.next_attempt_at <= now,
        # Leases were taken by earlier versions; such a row waits for its lease.
        sa.or_(InboxItem.locked_until.is_(None), InboxItem.locked_until < now),
    )


# What a batch reads of an item: rows, not ORM objects (a hundred a batch); an item that
# fails is loaded as an object then (``_fail``).
_TAKEN = (
    InboxItem.id,
    InboxItem.kind,
    InboxItem.payload,
    InboxItem.payload_owner,
    InboxItem.payload_key,
    InboxItem.payload_key_version,
    InboxItem.subject_index,
)


def _take(session: Session, limit: int, ids: list[int] | None = None) -> list[sa.Row[Any]]:
    """Due items, locked for this transaction (on PostgreSQL other workers skip them;
    SQLite has one writer anyway). Nothing to lease: a worker that dies mid-batch
    rolls its transaction back and the items are due again at once."""
    sqlite = dialect_of(session) == "sqlite"
    due = _due(clock.now(), by_id=sqlite and ids is None)
    query = sa.select(*_TAKEN).where(due).order_by(InboxItem.id).limit(limit)
    if ids is not None:
        query = query.where(InboxItem.id.in_(ids))
    if sqlite:
        # Stored already: its batch's DELETE did not commit (see InboxReceipt).
        query = query.where(~sa.exists().where(InboxReceipt.item_id == InboxItem.id))
    else:
        query = query.with_for_update(skip_locked=True)
    return list(session.execute(query))


# SQLite has one writer: a batch holds the write lock only this long, so requests
# (each a one-row INSERT) wait briefly. Items taken but not reached stay due.
SQLITE_BATCH_SECONDS = 0.05


class _HandlerFailed(Exception):
    """An item of an optimistic batch failed: the batch is done again, isolated."""

    def __init__(self, item_id: int, error: str) -> None:
        super().__init__(item_id, error)
        self.item_id = item_id
        self.error = error


def _store_batch(
    session: Session,
    handlers: dict[str, Handler],
    items: list[sa.Row[Any]],
    *,
    isolated: bool,
    failed: tuple[int, str] | None = None,
    snapshot: bool = False,
) -> int:
    """Store the items; deferred work (ledger, scoring) runs once at the end.

    ``isolated``: every item in a savepoint of its own, flushed there, so a failing
    one is rolled back and recorded while the others stay. Otherwise the items'
    rows wait for one flush at the end, and a failing item raises _HandlerFailed.
    ``failed``: an item (id, error type) whose handler already failed in this round,
    recorded without running it again."""
    vault = vault_of(session)
    sqlite = dialect_of(session) == "sqlite"
    started = time.monotonic()
    work = batch.begin(
        session,
        frozenset(item.subject_index for item in items if item.subject_index),
        isolated=isolated,
        snapshot=snapshot,
    )
    done: list[int] = []
    handled = 0
    if failed is not None:
        for item in items:
            if item.id == failed[0]:
                _fail(session, item.id, failed[1])
                handled += 1
        items = [item for item in items if item.id != failed[0]]
    try:
        for item in items:
            if sqlite and done and _over_budget(session, started):
                break
            mark = work.mark()
            handled += 1
            try:
                handler = handlers.get(item.kind)
                if handler is None:
                    raise LookupError(f"no handler for inbox kind {item.kind!r}")
                payload = unseal(
                    vault,
                    inbox_queueing.FIELD,
                    SealedPayload(
                        item.payload_owner, item.payload, item.payload_key, item.payload_key_version
                    ),
                )
                if isolated:
                    with session.begin_nested():
                        handler(session, payload)
                        session.flush()  # its rows now, so that an error is its own
                else:
                    handler(session, payload)
            except (batch.Conflict, StaleSnapshot):
                raise  # not this item's fault: the batch is done again, isolated
            except Exception as exc:  # this item's savepoint is rolled back; the others stay
                if not isolated:
                    raise _HandlerFailed(item.id, type(exc).__name__) from exc
                work.rewind(mark)
                _fail(session, item.id, type(exc).__name__)
            else:
                done.append(item.id)
        batch.finish(session)
    finally:
        batch.end(session)
    if done:
        _delete_at_commit(session, done, check=sqlite and not isolated)
    return handled


def _delete_at_commit(session: Session, done: list[int], *, check: bool) -> None:
    """Delete the stored items as the commit's last step: a listener of this session's
    ``before_commit`` runs after the ones registered for every session (the dashboard's
    ``admin.rollup.settle``, which writes the batch's aggregates). On SQLite the queue
    file's lock, which submissions wait for, is then held for the DELETE and the COMMIT
    alone. ``check``: the batch was read in a snapshot; an item already gone (taken by
    another worker, or erased, before the batch took the write lock) means the batch
    goes again (batch.Conflict, out of the commit)."""

    def delete(session: Session) -> None:
        session.flush()
        dialect = dialect_of(session)
        connection = session.connection()
        ids = {id_sets.NAME: id_sets.value(done, dialect)}
        sqlite = dialect == "sqlite"
        if sqlite:
            connection.execute(_WRITE_RECEIPTS, ids)  # the main file's, with the leads
        lock_queue(session)
        if sqlite:
            connection.execute(_FORGET_RECEIPTS)
        deleted = connection.execute(_DELETE[dialect], ids).rowcount
        if check and deleted != len(done):
            raise batch.Conflict("an item of the batch was handled elsewhere meanwhile")
        if sqlite:
            connection.execute(_DELETE_RECEIPTED)

    sa.event.listen(session, "before_commit", delete, once=True)


# The stored items' DELETE, built once, the ids one parameter (``id_sets``; on SQLite
# it runs under the write lock): no id coerced, rendered and bound one by one.
_DELETE = {
    dialect: sa.delete(InboxItem.__table__).where(id_sets.one_of(InboxItem.__table__.c.id, dialect))
    for dialect in ("sqlite", "postgresql")
}


# SQLite's receipts (InboxReceipt). A batch writes its items' receipts in the main
# file before it takes the queue file's lock; with that lock, before anything of the
# queue file is read (a transaction that read it before its lock would find it changed
# by submissions since, and could not write it: SQLITE_BUSY, not waited out), it drops
# the receipts of items gone (gone for good: ids are not used again; nothing else
# deletes items meanwhile, which needs the main file's lock, held here), deletes its
# items and then any item left with a receipt by a batch whose DELETE was lost. Never a
# receipt and its item in one transaction: were its queue file's part lost, the item
# would be stored again.
_RECEIPT_TABLE = InboxReceipt.__table__
_WRITE_RECEIPTS = sa.insert(_RECEIPT_TABLE).from_select(["item_id"], id_sets.listed())
_FORGET_RECEIPTS = sa.delete(_RECEIPT_TABLE).where(
    # Per receipt, a lookup of its item by key (NOT IN would read every queued id).
    ~sa.exists().where(InboxItem.__table__.c.id == _RECEIPT_TABLE.c.item_id)
)
_DELETE_RECEIPTED = sa.delete(InboxItem.__table__).where(
    InboxItem.__table__.c.id.in_(sa.select(_RECEIPT_TABLE.c.item_id))
)


def _over_budget(session: Session, started: float) -> bool:
    """Whether the batch has held SQLite's write lock for its budget (a batch begun as
    a snapshot holds none until its first write; one joined to a transaction begun
    earlier, the tests', counts from its own start)."""
    since = write_lock_since(session)
    return since is not None and time.monotonic() - max(since, started) > SQLITE_BATCH_SECONDS


def _fail(session: Session, item_id: int, error: str) -> None:
    lock_queue(session)
    item = session.get(InboxItem, item_id)
    if item is None:
        return
    settings = settings_of(session)
    item.attempts += 1
    item.last_error = error
    item.locked_by = None
    item.locked_until = None
    if item.attempts >= settings.outbox_max_attempts:
        item.status = InboxStatus.FAILED
        log.error("inbox item %s (%s) failed for good: %s", item.id, item.kind, error)
    else:
        item.next_attempt_at = clock.now() + leases.backoff(
            settings.outbox_retry_seconds, item.attempts
        )
        log.warning("inbox item %s (%s) failed, will retry: %s", item.id, item.kind, error)


def _record_failure(factory: sessionmaker[Session], item_id: int, error: str) -> None:
    with unit_of_work(factory) as session:
        _fail(session, item_id, error)


@dataclasses.dataclass(frozen=True)
class BatchResult:
    handled: int  # stored or failed
    taken: int  # due items taken (on SQLite a batch may end before it reaches them all)


def process_due(
    factory: sessionmaker[Session],
    handlers: dict[str, Handler],
    *,
    limit: int = 100,
    worker_id: str = "",
) -> int:
    """Take up to ``limit`` due items and store them in one transaction; returns how many
    were handled (stored or failed)."""
    return process_batch(factory, handlers, limit=limit).handled


def process_batch(
    factory: sessionmaker[Session], handlers: dict[str, Handler], *, limit: int
) -> BatchResult:
    """:func:`process_due`, telling also how many items were due. Should a handler
    fail, the batch is done again with each item isolated; should the batch's end or
    its commit fail, each item is tried alone."""
    ids: list[int] = []
    try:
        try:
            with unit_of_work(factory) as session:
                # On SQLite the items are read and handled in a snapshot, and the write
                # lock is taken at the batch's first write (often its end), checking
                # that what it read still holds (sqlite_writer.SNAPSHOT_FIRST).
                snapshot = begin_snapshot(session)
                items = _take(session, limit)
                ids = [item.id for item in items]
                if snapshot:
                    forget_reads(session)  # the items are checked by the DELETE's count
                handled = (
                    _store_batch(session, handlers, items, isolated=False, snapshot=snapshot)
                    if items
                    else 0
                )
            return BatchResult(handled, len(ids))
        except _HandlerFailed as failure:
            failed: tuple[int, str] | None = (failure.item_id, failure.error)
        except (batch.Conflict, StaleSnapshot) as exc:
            # Another worker created one of its leads meanwhile, or (SQLite) what the
            # snapshot read changed before the batch could write.
            log.info("inbox batch of %s goes again item by item (%s)", len(ids), type(exc).__name__)
            failed = None
        # Again without the failed item's handler, the others each in a savepoint.
        with unit_of_work(factory) as session:
            items = _take(session, limit, ids)
            handled = _store_batch(session, handlers, items, isolated=True, failed=failed)
        return BatchResult(handled, len(ids))
    except Exception as exc:
        if not ids:
            raise
        log.warning("inbox batch of %s failed (%s); one by one", len(ids), type(exc).__name__)
    for item_id in ids:
        try:
            with unit_of_work(factory) as session:
                _store_batch(session, handlers, _take(session, 1, [item_id]), isolated=True)
        except Exception as exc:
            _record_failure(factory, item_id, type(exc).__name__)
    return BatchResult(len(ids), len(ids))


def pending_count(session: Session) -> int:
    return (
        session.scalar(sa.select(sa.func.count()).where(InboxItem.status == InboxStatus.PENDING))
        or 0
    )


def drop_for_subject(session: Session, email_index: bytes) -> int:
    """Erasure: pending work about this address goes with the lead."""
    result = session.execute(sa.delete(InboxItem).where(InboxItem.subject_index == email_index))
    return result.rowcount


def forget_failed(session: Session, older_than: dt.datetime) -> int:
    """Failed items hold sealed personal data: keep them for inspection, not forever."""
    result = session.execute(
        sa.delete(InboxItem).where(
            InboxItem.status == InboxStatus.FAILED, InboxItem.received_at < older_than
        )
    )
    return result.rowcount
