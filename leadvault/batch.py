"""A batch: many inbox items in one transaction, with work deferred to its end.

The worker stores a batch of inbox items in one transaction, each item in a
savepoint of its own (see ``leadvault.inbox``). Work that is cheaper done once
for the whole batch is deferred here by the package that owns it and done by
its ``flush`` function just before the commit, in ascending ``order``: the
consent ledger locks its head once and appends the batch's entries in order
(last, so the lock is held for a moment); scoring scores the batch's events
on in-memory states. Reads that do not change within a batch (rules, active
sequences) are cached for its length with :func:`cached`.

Rows that nothing reads back within the batch (submissions, opt-in requests,
outbox mails) are queued by :func:`insert` and written at its end with one
executemany per table, before the deferred work: no ORM object, no unit of
work. An isolated batch (each item in a savepoint of its own) writes them at
once instead, so that a failing item's rows go with its savepoint.

Rows that other rows refer to (a new lead) are queued by :func:`insert_first`:
written by one executemany too, but before the batch's next ORM statement or
flush, and before the other queued rows, so that whatever refers to them finds
them; a row the database skips (another transaction wrote its key meanwhile)
raises :class:`Conflict`, and the inbox does the batch again item by item.

Outside a batch (a request, a command) :func:`defer` and :func:`insert` return
False and the caller does the work at once, as before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.sql import util as sql_util

from leadvault.bulk import BoundRows, prepare
from leadvault.sqlite_writer import in_snapshot

_KEY = "leadvault.batch"

Flush = Callable[[Session, list[Any]], None]
Row = TypeVar("Row", bound=DeclarativeBase)


@dataclasses.dataclass
class _Deferred:
    order: int
    flush: Flush
    items: list[Any] = dataclasses.field(default_factory=list)
    # See defer(): may run before the queued rows are written (a snapshot batch).
    before_writes: bool = False


@dataclasses.dataclass
class Batch:
    # Blind indexes of the addresses the batch's items are about (bulk reads by address).
    subjects: frozenset[bytes] = frozenset()
    deferred: dict[str, _Deferred] = dataclasses.field(default_factory=dict)
    cache: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Each item in a savepoint of its own: rows are written at once, not queued.
    isolated: bool = False
    inserts: dict[sa.Table, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    # insert_first's rows: (statement, rows); written before any other statement.
    first: dict[sa.Executable, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    # Begun as a read snapshot (SQLite, sqlite_writer.SNAPSHOT_FIRST): its first write takes the
    # write lock, so rows wait to be written until a statement could read them.
    snapshot: bool = False

    def mark(self) -> dict[str, int]:
        """Where each queue stands (before an item), to :meth:`rewind` to on its failure."""
        return {key: len(entry.items) for key, entry in self.deferred.items()}

    def rewind(self, mark: dict[str, int]) -> None:
        """Forget what a failed item deferred (its savepoint was rolled back)."""
        for key, entry in self.deferred.items():
            del entry.items[mark.get(key, 0) :]
        # Cached reads may include rows of the rolled-back savepoint.
        self.cache.clear()


class Conflict(Exception):
    """A row queued by :func:`insert_first` was skipped: another transaction wrote its
    key after the batch looked (two workers, one new address). Do the batch again with
    each item on its own (rows written at once)."""


def begin(
    session: Session,
    subjects: frozenset[bytes] = frozenset(),
    *,
    isolated: bool = False,
    snapshot: bool = False,
) -> Batch:
    """``snapshot``: the session's transaction is a read snapshot until its first write
    (``sqlite_writer.begin_snapshot``); autoflush is then off, and a statement flushes (and writes
    the queued first rows) only when it reads a table they go to."""
    batch = Batch(subjects, isolated=isolated, snapshot=snapshot and not isolated)
    session.info[_KEY] = batch
    if not isolated:
        sa.event.listen(session, "before_flush", _before_flush)
        sa.event.listen(session, "do_orm_execute", _before_execute)
    if batch.snapshot:
        session.autoflush = False
    return batch


def end(session: Session) -> None:
    batch = session.info.pop(_KEY, None)
    if batch is not None and not batch.isolated:
        sa.event.remove(session, "before_flush", _before_flush)
        sa.event.remove(session, "do_orm_execute", _before_execute)
    session.autoflush = True


def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    batch = active(session)
    if batch is not None and (batch.first or batch.inserts):
        # Queued rows first: the flush may update one (an attribute a later item changes).
        _write_inserts(session, batch)


def _before_execute(state: Any) -> None:
    batch = active(state.session)
    if batch is not None:
        _before_statement(state.session, batch, state.statement if state.is_select else None)


def _before_statement(session: Session, batch: Batch, select: Any) -> None:
    """What a statement through the session needs first (``select``: the statement if it
    only reads, else None): the rows it may read or change written, pending objects
    flushed where autoflush would."""
    if batch.snapshot and not in_snapshot(session):
        # The write lock is taken: from now on as any batch (autoflush included).
        batch.snapshot = False
        session.autoflush = True
        if session.new or session.dirty or session.deleted:
            session.flush()
    if batch.snapshot:
        _flush_for(session, batch, select)
        return
    if batch.inserts and _reads_queued(select, batch):
        _write_inserts(session, batch)
    elif batch.first:
        _write_first(session, batch)


def _reads_queued(select: Any, batch: Batch) -> bool:
    """Whether the statement may read a table that queued rows go to (a later item of
    the batch reading its lead's consents or attributes)."""
    if select is None:
        return True  # an INSERT, UPDATE or DELETE may touch a queued row
    read = _tables(select)
    return read is None or not read.isdisjoint(batch.inserts)


def _flush_for(session: Session, batch: Batch, select: Any) -> None:
    """In a snapshot batch, what autoflush would do, only where it changes what the
    statement reads: a SELECT of tables that no queued or pending row goes to runs in
    the snapshot, without the write lock (the first write takes it)."""
    if select is not None:
        read = _tables(select)
        if read is not None:
            queued = {statement.table for statement in batch.first}  # type: ignore[attr-defined]
            queued.update(batch.inserts)
            pending = {
                table
                for instance in (*session.new, *session.dirty, *session.deleted)
                for table in sa.inspect(instance).mapper.tables
            }
            if read.isdisjoint(queued | pending):
                return
    _write_inserts(session, batch)
    session.flush()


def _tables(statement: Any) -> set[sa.Table] | None:
    """The tables a statement reads (subqueries included); None if it reads anything
    else (a text clause, a table-valued function): then it may read any rows."""
    found = sql_util.find_tables(statement, check_columns=True)
    if not all(isinstance(table, sa.Table) for table in found):
        return None
    return set(found)


def insert_first(session: Session, statement: sa.Executable, values: dict[str, Any]) -> bool:
    """Queue a row that other rows refer to for one executemany of ``statement`` (an
    INSERT that skips a row whose unique key exists, counting rows) before the batch's
    next ORM statement or flush; False outside an optimistic batch (insert it now)."""
    batch = active(session)
    if batch is None or batch.isolated:
        return False
    batch.first.setdefault(statement, []).append(values)
    return True


def _write_first(session: Session, batch: Batch) -> None:
    first, batch.first = batch.first, {}
    connection = session.connection()
    _write(connection, [prepare(connection.dialect, s, rows) for s, rows in first.items()], [])


def _write(connection: sa.Connection, first: list[BoundRows], rest: list[BoundRows]) -> None:
    """Write rows bound already: ``first`` (insert_first's, counted), then ``rest``."""
    for prepared in first:
        if prepared.write(connection) != len(prepared.params):
            raise Conflict("a queued row's key was written meanwhile")
    for prepared in rest:
        prepared.write(connection)


def active(session: Session) -> Batch | None:
    return session.info.get(_KEY)


def defer(
    session: Session,
    key: str,
    item: Any,
    flush: Flush,
    *,
    order: int = 0,
    before_writes: bool = False,
) -> bool:
    """Queue ``item`` for ``flush`` at the batch's end; False outside a batch (do it now).

    ``before_writes``: every statement ``flush`` runs goes through the session (none on
    its Core connection), so one that reads or writes a table the batch's queued rows
    go to writes them first (``_flush_for``). In a SQLite snapshot batch such a flush
    then runs before the queued rows are written: its work (scoring the batch: rules,
    enrichment, sealing the events) is done before its first write takes the write
    lock, not while requests wait for it."""
    batch = active(session)
    if batch is None:
        return False
    entry = batch.deferred.get(key)
    if entry is None:
        entry = batch.deferred[key] = _Deferred(order, flush, before_writes=before_writes)
    entry.items.append(item)
    return True


def write_rows(session: Session, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """``session.execute(sa.insert(table), rows)`` as one bulk write (``leadvault.bulk``:
    no per-row parameter work; on PostgreSQL one multi-row INSERT instead of psycopg's
    pipelined executemany). In a batch what the session's hook does before a write is
    done first (the queued rows written; in a snapshot batch pending objects flushed).
    Every row names the same columns."""
    if not rows:
        return
    # Bound first: in a snapshot batch the write below (or the queued rows' before it)
    # takes SQLite's write lock.
    prepared = prepare(session.get_bind().dialect, table, rows)
    batch = active(session)
    if batch is not None and not batch.isolated:
        _before_statement(session, batch, None)
    prepared.write(session.connection())


def insertable(session: Session) -> bool:
    """Whether :func:`insert` queues rows (an optimistic batch) rather than returning False."""
    batch = active(session)
    return batch is not None and not batch.isolated


def insert(session: Session, table: sa.Table, values: dict[str, Any]) -> bool:
    """Queue a row for the batch's executemany into ``table``; False outside an optimistic
    batch (insert it now). Every row of a table must name the same columns."""
    batch = active(session)
    if batch is None or batch.isolated:
        return False
    batch.inserts.setdefault(table, []).append(values)
    return True


def add(session: Session, model: type[Row], values: dict[str, Any]) -> Row | None:
    """A row of ``model``: queued for the batch's executemany (None: no ORM object, the
    caller keeps its values), else added to the session and returned — flushed at once
    outside any batch (an isolated batch flushes each item's rows in its savepoint)."""
    if insert(session, model.__table__, values):
        return None
    row = model(**values)
    session.add(row)
    if active(session) is None:
        session.flush()
    return row


def finish(session: Session) -> None:
    """Write the queued rows, then run the deferred work, lowest ``order`` first; a flush
    may defer more work or queue more rows. In a snapshot batch that has not written yet
    the queued rows wait while the next flush may run before them (``defer``)."""
    batch = active(session)
    if batch is None:
        return
    while True:
        waiting = [(e.order, key) for key, e in batch.deferred.items() if e.items]
        if not (
            waiting
            and batch.snapshot
            and in_snapshot(session)
            and batch.deferred[min(waiting)[1]].before_writes
        ):
            _write_inserts(session, batch)
        if not waiting:
            return
        _order, key = min(waiting)
        entry = batch.deferred[key]
        items, entry.items = entry.items, []
        entry.flush(session, items)


def write_queued(session: Session) -> None:
    """Write the batch's queued rows now (before reading some of them back as objects)."""
    batch = active(session)
    if batch is not None:
        _write_inserts(session, batch)


def _write_inserts(session: Session, batch: Batch) -> None:
    """Write the queued rows, every table's bound before the first is written: in a
    snapshot batch the first write takes SQLite's write lock, and requests wait for
    what runs under it (binding timestamps, UUIDs and JSON is most of a bulk write's
    Python work; under the lock only the executemanys run)."""
    first, batch.first = batch.first, {}
    inserts, batch.inserts = batch.inserts, {}
    if not (first or inserts):
        return
    connection = session.connection()
    dialect = connection.dialect
    _write(
        connection,
        [prepare(dialect, statement, rows) for statement, rows in first.items()],
        [prepare(dialect, table, rows) for table, rows in inserts.items()],
    )


def cached(session: Session, key: str, load: Callable[[], Any]) -> Any:
    """``load()`` once per batch (every time outside one)."""
    batch = active(session)
    if batch is None:
        return load()
    if key not in batch.cache:
        batch.cache[key] = load()
    return batch.cache[key]
