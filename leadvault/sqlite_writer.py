"""SQLite's writers: a fair queue for each write lock, read-only transactions that
never queue, snapshot transactions that take the lock only at their first write, and
the queue file.

The queue file: the tables the public endpoint writes (``QUEUE_TABLES``: the inbox and
the spent single-use keys) live in a database file of their own beside the main one,
attached to every connection as ``queue``. SQLite has one write lock per file, so a
submission (a write to the queue file only) never waits while the worker holds the
main file's lock to store a batch of leads; the worker takes the queue file's lock only
for the moment it deletes the batch's items. Unqualified table names find the tables
in either file, so no statement names the file. A transaction writing both files (the
worker's batch: its leads, then its items' DELETE) commits them one after the other,
each atomic in its WAL, main first: a worker killed between the two leaves its items
queued with their leads stored, and the receipts written with the leads keep them from
being stored again (``leadvault.inbox``, ``InboxReceipt``). PostgreSQL needs none of this;
:func:`leadvault.engine.create_engine` wires it for SQLite.
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
from collections.abc import Iterator
from pathlib import Path
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
        if queue_file is not None:
            cursor.execute(f"ATTACH DATABASE ? AS {QUEUE_SCHEMA}", (queue_file,))
            cursor.execute(f"PRAGMA {QUEUE_SCHEMA}.journal_mode=WAL")
            cursor.execute(f"PRAGMA {QUEUE_SCHEMA}.synchronous=NORMAL")
            cursor.execute(f"PRAGMA {QUEUE_SCHEMA}.secure_delete=ON")
        cursor.close()

    queue_file = queue_path(engine.url.database)
    writers = _Writers(
        _WriterQueue(engine.url.database),
        _WriterQueue(queue_file) if queue_file is not None else None,
    )
    _WRITERS[engine] = writers
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
        # A transaction that writes one file (WRITES) queues for that file's lock alone
        # (_Writers.begin).
        files = connection.get_execution_options().get(WRITES)
        begin = writers.begin(files)
        if not connection.info.get(_QUEUED):
            connection.info[_QUEUED] = writers.acquire(files)
        # Straight to the driver: this runs once per write transaction, and
        # SQLAlchemy's statement machinery costs more than the statement.
        try:
            connection.connection.driver_connection.execute(begin)
        except sqlite3.Error as exc:  # surfaced like every other database error
            raise sa.exc.DBAPIError.instance(begin, None, exc, sqlite3.Error) from exc

    _release_at_end(engine.dialect)

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_connection: Any, record: Any) -> None:
        if record.info.pop(_QUERY_ONLY, False):
            dbapi_connection.execute("PRAGMA query_only=0")
        # A transaction whose ROLLBACK failed (or that never got that far: BEGIN
        # IMMEDIATE found the database locked) lets go here.
        _release(record.info.pop(_QUEUED, ()))


def _release(held: tuple[_WriterQueue, ...]) -> None:
    for queue in reversed(held):
        queue.release()


def _release_at_end(dialect: Any) -> None:
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
        _release(info.pop(_QUEUED, ()))

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


def _configure_snapshots(engine: Engine, writers: _Writers) -> None:
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
            # The main file's lock; the queue file's too only when the batch said it
            # would write there (else at lock_queue, for its last statement).
            files = None if snapshot.writes_queue else MAIN
            connection.info[_QUEUED] = writers.acquire(files)
            driver.execute(writers.begin(files))
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
    # lock_queue was called before the first write: the queue file is written too.
    writes_queue: bool = False


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
    return _main_lock_fact(engine, "acquired_at", None)


def writer_waited(engine: Engine) -> float:
    """Seconds this thread last waited for SQLite's write lock held by another process
    (requests, when the worker runs apart); 0 on PostgreSQL. The worker yields to
    requests when it had to wait."""
    return _main_lock_fact(engine, "waited", 0.0)


def _main_lock_fact(engine: Engine, name: str, default: Any) -> Any:
    """What this thread's last turn at the main file's writer queue noted (``name``)."""
    writers = _WRITERS.get(engine)
    return getattr(writers.main.local, name, default) if writers is not None else default


def checkpoint_apart(engine: Engine) -> None:
    """The engine's connections (the worker's) leave the WAL's checkpoints to
    :func:`checkpoint`. SQLite checkpoints in the COMMIT that fills the WAL, after its
    own lock is let go but before the COMMIT returns, so under the writer queue: a batch's
    COMMIT took ~10 ms instead of ~2, the queue file's lock held all along (what
    submissions wait for). Nothing on PostgreSQL."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _no_auto_checkpoint(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

    engine.pool.dispose()  # connections made before: made again, with the setting


def checkpoint(engine: Engine) -> None:
    """Copy the WAL's committed pages into the database files as far as readers allow
    (PASSIVE: it waits for nobody), outside any transaction and writer queue. Cheap when
    there is nothing to copy. Nothing on PostgreSQL."""
    if engine.dialect.name != "sqlite":
        return
    raw = engine.raw_connection()
    try:
        raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    finally:
        raw.close()


def lock_queue(session: Session) -> None:
    """The transaction will write the queue file now (the worker's batch deletes its
    items): its lock is taken here, after the main file's (always in that order), when
    the transaction holds the main file's alone (``WRITES`` or a snapshot's first write)."""
    connection = session.connection()
    snapshot = connection.info.get(_SNAPSHOT)
    if snapshot is not None:
        snapshot.writes_queue = True
        return
    writers = _WRITERS.get(connection.engine)
    held = connection.info.get(_QUEUED)
    if writers is None or writers.queue is None or not held or writers.queue in held:
        return
    writers.queue.acquire()
    connection.info[_QUEUED] = (*held, writers.queue)


def writes(session: Session, files: str) -> None:
    """Begin the session's write transaction on one file's lock (``MAIN`` or ``QUEUE``)
    instead of both: it must not read the other file before writing it."""
    bind = session.get_bind()
    if isinstance(bind, Engine) and bind.dialect.name == "sqlite":
        session.connection(execution_options={WRITES: files})


def queue_attached(connection: sa.Connection) -> bool:
    """Whether the connection's database has the queue file attached (SQLite, a file)."""
    if connection.dialect.name != "sqlite":
        return False
    names = {row[1] for row in connection.exec_driver_sql("PRAGMA database_list")}
    return QUEUE_SCHEMA in names


@contextlib.contextmanager
def main_file_held(engine: Engine) -> Iterator[None]:
    """No transaction writes the main file while the block runs (its writer queue is
    held, as a write transaction holds it; submissions, which write the queue file
    alone, go on). Nothing on PostgreSQL."""
    writers = _WRITERS.get(engine)
    held = writers.acquire(MAIN) if writers is not None else ()
    try:
        yield
    finally:
        _release(held)


def queue_path(database: str | None) -> str | None:
    """The queue file beside the database file ``database`` (``leadvault.db`` →
    ``leadvault-queue.db``); None for an in-memory database (everything in one)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database)
    return str(path.with_name(f"{path.stem}-queue{path.suffix}"))


QUEUE_SCHEMA = "queue"
# The tables in the queue file: what the public endpoint writes.
QUEUE_TABLES = ("inbox", "spent_tokens")
# Execution option: the one file a write transaction writes, MAIN or QUEUE.
WRITES = "leadvault_writes"
MAIN = "main"
QUEUE = "queue"

_QUEUED = "leadvault.writer_queued"
_QUERY_ONLY = "leadvault.query_only"
# Execution option of a connection whose transaction only reads (read_only_engine(),
# read_only()); SQLite and PostgreSQL then refuse writes.
READ_ONLY = "leadvault_read_only"


@dataclasses.dataclass(frozen=True)
class _Writers:
    """The main file's writer queue and the queue file's (None in memory)."""

    main: _WriterQueue
    queue: _WriterQueue | None

    def acquire(self, files: str | None) -> tuple[_WriterQueue, ...]:
        """Queue for the locks a transaction writing ``files`` (None: both) needs, the
        main file's first; returns them, to be released in reverse."""
        if self.queue is None:
            wanted: tuple[_WriterQueue, ...] = (self.main,)
        elif files == MAIN:
            wanted = (self.main,)
        elif files == QUEUE:
            wanted = (self.queue,)
        else:
            wanted = (self.main, self.queue)
        taken: list[_WriterQueue] = []
        try:
            for queue in wanted:
                queue.acquire()
                taken.append(queue)
        except BaseException:
            _release(tuple(taken))
            raise
        return tuple(taken)

    def begin(self, files: str | None) -> str:
        """The BEGIN for a transaction writing ``files``, its locks queued for: IMMEDIATE
        takes every file's lock; one writing one file of two begins deferred (it takes
        that file's lock at its first write, which comes before any read there)."""
        return "BEGIN IMMEDIATE" if files is None or self.queue is None else "BEGIN"


_WRITERS: weakref.WeakKeyDictionary[Engine, _Writers] = weakref.WeakKeyDictionary()


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
