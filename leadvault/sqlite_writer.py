"""SQLite's one writer: a fair queue for its write lock, read-only transactions that
never queue, and snapshot transactions that take the lock only at their first write.

PostgreSQL needs none of this; :func:`leadvault.engine.create_engine` wires it for SQLite.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import sqlite3
import threading
import time
import weakref
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session


def configure(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Freed pages are zeroed so erased personal data leaves no bytes behind.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    writers = _WriterQueue(engine.url.database)
    _WRITER_QUEUES[engine] = writers
    _configure_snapshots(engine, writers)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        driver = connection.connection.driver_connection
        if connection.get_execution_options().get(SNAPSHOT_FIRST):
            # A worker's batch: reads (and the work on them) in a snapshot, no write
            # lock until its first write (_upgrade).
            try:
                driver.execute("BEGIN")
            except sqlite3.Error as exc:
                raise sa.exc.DBAPIError.instance("BEGIN", None, exc, sqlite3.Error) from exc
            connection.info[_SNAPSHOT] = _Snapshot()
            return
        if connection.get_execution_options().get(READ_ONLY):
            # A reader (GET, HEAD, an export): no write lock to wait for (WAL lets it read
            # beside the writer), and SQLite itself refuses any write.
            connection.info[_QUERY_ONLY] = True
            try:
                driver.execute("PRAGMA query_only=1")
                driver.execute("BEGIN")
            except sqlite3.Error as exc:
                raise sa.exc.DBAPIError.instance("BEGIN", None, exc, sqlite3.Error) from exc
            return
        # Take the write lock up front: two deferred transactions that both
        # read and then write would otherwise fail with "database is locked"
        # instead of waiting their turn. Queue for it first (see _WriterQueue).
        if not connection.info.get(_QUEUED):
            writers.acquire()
            connection.info[_QUEUED] = True
        # Straight to the driver: this runs once per write transaction, and
        # SQLAlchemy's statement machinery costs more than the statement.
        try:
            connection.connection.driver_connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:  # surfaced like every other database error
            raise sa.exc.DBAPIError.instance("BEGIN IMMEDIATE", None, exc, sqlite3.Error) from exc

    _release_at_end(engine.dialect, writers)

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_connection: Any, record: Any) -> None:
        if record.info.pop(_QUERY_ONLY, False):
            dbapi_connection.execute("PRAGMA query_only=0")
        # A transaction whose ROLLBACK failed (or that never got that far: BEGIN
        # IMMEDIATE found the database locked) lets go here.
        if record.info.pop(_QUEUED, False):
            writers.release()


def _release_at_end(dialect: Any, writers: _WriterQueue) -> None:
    """Let go of the writer queue as soon as a write transaction's COMMIT or ROLLBACK
    returns, not when its connection is back in the pool (after the pool's reset and
    check-in: an eighth of a submission's time under the lock). The next write
    transaction on the connection queues again (``_QUEUED`` is gone).

    SQLAlchemy's engine events ``commit`` and ``rollback`` fire before the driver's
    COMMIT and there is no event after it: the dialect's ``do_commit`` and
    ``do_rollback`` are wrapped (every root transaction's end and the pool's
    reset-on-return go through them; savepoints do not)."""
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def ended(dbapi_connection: Any) -> None:
        # A pooled connection's info is its pool record's, where _on_begin marks it.
        try:
            info = dbapi_connection.info
        except NotImplementedError:  # SQLAlchemy's first connect: no record, no queue
            return
        if info.pop(_QUEUED, False):
            writers.release()

    def do_commit(dbapi_connection: Any) -> None:
        try:
            commit(dbapi_connection)
        except sqlite3.Error:
            # SQLite keeps the transaction (and its write lock) when COMMIT fails (a
            # deferred foreign key), but SQLAlchemy takes it as ended and rolls nothing
            # back: the connection would go back to the pool inside it, and its next
            # BEGIN fail. Rolled back here; the COMMIT's error is the one raised.
            with contextlib.suppress(sqlite3.Error):
                rollback(dbapi_connection)
            raise
        finally:
            if not dbapi_connection.driver_connection.in_transaction:
                ended(dbapi_connection)

    def do_rollback(dbapi_connection: Any) -> None:
        rollback(dbapi_connection)
        ended(dbapi_connection)

    dialect.do_commit = do_commit
    dialect.do_rollback = do_rollback


def _configure_snapshots(engine: Engine, writers: _WriterQueue) -> None:
    """A transaction begun with ``SNAPSHOT_FIRST`` takes the write lock at its first
    write, once what it read is found unchanged (else StaleSnapshot)."""

    @event.listens_for(engine, "before_cursor_execute")
    def _upgrade(
        connection: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any
    ) -> None:
        snapshot = connection.info.get(_SNAPSHOT)
        if snapshot is None:
            return
        head = statement.lstrip()[:9].upper()
        if head.startswith("SELECT"):
            snapshot.reads.append((statement, parameters))
            return
        if head.startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):
            return
        # Anything else may write (a WITH … INSERT too): the write lock first.
        del connection.info[_SNAPSHOT]
        driver = connection.connection.driver_connection
        try:
            seen = [_rows(driver, read) for read in snapshot.reads]
            driver.execute("COMMIT")  # the snapshot's transaction wrote nothing
            writers.acquire()
            connection.info[_QUEUED] = True
            driver.execute("BEGIN IMMEDIATE")
            now = [_rows(driver, read) for read in snapshot.reads]
        except sqlite3.Error as exc:
            raise sa.exc.DBAPIError.instance(statement, None, exc, sqlite3.Error) from exc
        if seen != now:
            raise StaleSnapshot("what the batch read changed before it took the write lock")

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _on_end(connection: Any) -> None:
        connection.info.pop(_SNAPSHOT, None)

    @event.listens_for(engine, "checkin")
    def _forget(_dbapi_connection: Any, record: Any) -> None:
        record.info.pop(_SNAPSHOT, None)


_WRITER_QUEUES: weakref.WeakKeyDictionary[Engine, _WriterQueue] = weakref.WeakKeyDictionary()

# Execution option (SQLite): the transaction begins as a read snapshot and takes the
# write lock at its first write, after checking that what it read is still so
# (_upgrade). A worker's batch reads, decrypts, renders and decides without holding
# the one write lock that requests queue for; the lock is held for its writes.
SNAPSHOT_FIRST = "leadvault_snapshot_first"
_SNAPSHOT = "leadvault.snapshot"


class StaleSnapshot(Exception):
    """Rows a snapshot transaction read changed before it could write: its decisions
    may rest on them, so the work is done again under the write lock."""


@dataclasses.dataclass
class _Snapshot:
    # The SELECTs run in the snapshot (statement, parameters): run again, before and
    # after the write lock is taken, they must give the same rows.
    reads: list[tuple[str, Any]] = dataclasses.field(default_factory=list)


def _rows(driver: sqlite3.Connection, read: tuple[str, Any]) -> list[Any]:
    return driver.execute(*read).fetchall()


def begin_snapshot(session: Session) -> bool:
    """Begin the session's transaction as a snapshot (see ``SNAPSHOT_FIRST``): SQLite
    only, and only on an engine (a test's shared connection is begun already). Returns
    whether it did."""
    bind = session.get_bind()
    if not isinstance(bind, Engine) or bind.dialect.name != "sqlite":
        return False
    session.connection(execution_options={SNAPSHOT_FIRST: True})
    return True


def forget_reads(session: Session) -> None:
    """Reads so far need not be checked again at the first write (the inbox's own
    claim, which new submissions change all the time: its rows are checked by id)."""
    snapshot = session.connection().info.get(_SNAPSHOT)
    if snapshot is not None:
        snapshot.reads.clear()


def in_snapshot(session: Session) -> bool:
    """Whether the session's transaction is a snapshot that has not written yet."""
    return session.connection().info.get(_SNAPSHOT) is not None


def write_lock_since(session: Session) -> float | None:
    """When the session's SQLite transaction took the write lock; None while it is a
    snapshot (or on PostgreSQL)."""
    connection = session.connection()
    if connection.info.get(_SNAPSHOT) is not None:
        return None
    return write_locked_at(connection.engine)


def write_locked_at(engine: Engine) -> float | None:
    """When (``time.monotonic``) this thread last took SQLite's write lock; None on
    PostgreSQL."""
    queue = _WRITER_QUEUES.get(engine)
    return getattr(queue.local, "acquired_at", None) if queue is not None else None


def writer_waited(engine: Engine) -> float:
    """Seconds this thread last waited for SQLite's write lock held by another process
    (requests, when the worker runs apart); 0 on PostgreSQL. The worker yields to
    requests when it had to wait."""
    queue = _WRITER_QUEUES.get(engine)
    return getattr(queue.local, "waited", 0.0) if queue is not None else 0.0


_QUEUED = "leadvault.writer_queued"
_QUERY_ONLY = "leadvault.query_only"
# Execution option of a connection whose transaction only reads (read_only_engine(),
# read_only()); SQLite and PostgreSQL then refuse writes.
READ_ONLY = "leadvault_read_only"


class _WriterQueue:
    """A fair queue for SQLite's single writer, across threads and processes.

    SQLite's busy handler polls with sleeps of up to 100 ms, so under load a
    waiting writer often sleeps long after the lock was freed (p99 latency)
    while the one that just released it takes it again. A thread lock plus
    ``flock`` on a file beside the database lets the kernel hand the lock to
    the next waiter at once. Held from BEGIN (or a snapshot's first write) until
    the transaction's COMMIT or ROLLBACK returns (``_release_at_end``; should the
    ROLLBACK fail, until the connection returns to the pool); each write transaction
    queues anew, so a connection never writes on a turn it was not given.
    """

    def __init__(self, database: str | None) -> None:
        self.path = f"{database}.writer-lock" if database and database != ":memory:" else None
        self.thread_lock = threading.Lock()
        # Seconds this thread last waited for other processes' writers (requests, when
        # the worker runs apart).
        self.local = threading.local()
        self._fd: int | None = None
        self._pid = 0

    def _descriptor(self) -> int | None:
        if self.path is None:
            return None
        if self._fd is None or self._pid != os.getpid():  # reopen after a fork
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd

    def acquire(self) -> None:
        if not self.thread_lock.acquire(timeout=60):
            raise TimeoutError("waited 60 s for the SQLite write lock")
        descriptor = self._descriptor()
        started = time.monotonic()
        if descriptor is not None:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        self.local.acquired_at = time.monotonic()
        self.local.waited = self.local.acquired_at - started

    def release(self) -> None:
        descriptor = self._descriptor()
        if descriptor is not None:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
        self.thread_lock.release()
