"""The engine: one per database URL, and what holds for every connection of it.

SQLite gets its writer queue and pragmas (:mod:`leadvault.sqlite_writer`); PostgreSQL
connections the server dropped are noticed without a round trip and replaced. Every
connection carries a read-only mark that the read-only guard checks (sessions set it,
see ``db.make_session_factory``). One-statement writes use a connection each thread
keeps out of the pool (:func:`autocommit_connection`).
"""

from __future__ import annotations

import os
import re
import select
import threading
import weakref
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from leadvault import sqlite_writer
from leadvault.sqlite_writer import READ_ONLY


def create_engine(url: str, *, pool_size: int = 10) -> Engine:
    # hide_parameters: a failed statement's error (logged, shown in a traceback) says
    # the SQL without its parameters, which are blind indexes, sealed blobs, staff
    # addresses and token keys.
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            hide_parameters=True,
        )
        sqlite_writer.configure(engine)
    else:
        # No pre-ping (a round trip per checkout, a fifth of a submission's time): a
        # connection the server dropped is noticed locally at checkout and replaced.
        engine = sa.create_engine(
            url, pool_size=pool_size, max_overflow=20, pool_recycle=3600, hide_parameters=True
        )
        event.listen(engine, "checkout", _drop_if_closed)
    _guard_read_only(engine)
    return engine


def _drop_if_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """On checkout: the pool connects anew (SQLAlchemy retries the checkout on
    DisconnectionError) instead of failing the request, see :func:`_went_away`."""
    if _went_away(dbapi_connection):
        raise sa.exc.DisconnectionError("the server closed the connection")


def _went_away(dbapi_connection: Any) -> bool:
    """An idle PostgreSQL connection: the server has nothing to say to it unless it is
    going away (a termination notice, a closed socket: server restart,
    ``pg_terminate_backend``, an idle timeout). Looks without waiting and without a
    round trip (no pre-ping: that was a fifth of a submission's time)."""
    pgconn = getattr(dbapi_connection, "pgconn", None)
    if pgconn is None:
        return False
    try:
        descriptor = pgconn.socket
    except Exception:  # psycopg raises when the connection is closed already
        return True
    poller = select.poll()
    poller.register(descriptor, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


class ReadOnlyViolation(sa.exc.InvalidRequestError):
    """A read-only session (a GET, HEAD or OPTIONS request) tried to write."""


# In a connection's info: whether the session that began on it is read-only. Every
# session sets it as it begins (``db.make_session_factory``), every other writer too;
# the guard below refuses a marked connection's writes.
READ_ONLY_MARK = "leadvault.read_only_session"
_WRITES = re.compile(
    r"\s*(INSERT|UPDATE|DELETE|REPLACE|UPSERT|MERGE|CREATE|DROP|ALTER|TRUNCATE)\b", re.IGNORECASE
)


def _guard_read_only(engine: Engine) -> None:
    """Refuse writes of a read-only session in SQLAlchemy too, not only in the database.

    The database refuses them already when the session has a connection of its own
    (PostgreSQL READ ONLY, SQLite query_only); this also holds where a session
    shares a connection that was begun before (the test suite's savepoints).
    """

    @event.listens_for(engine, "before_cursor_execute")
    def _refuse(connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if connection.info.get(READ_ONLY_MARK) and _WRITES.match(statement):
            raise ReadOnlyViolation("a read-only request (GET, HEAD, OPTIONS) tried to write")

    @event.listens_for(engine, "checkin")
    def _forget(_dbapi_connection: Any, record: Any) -> None:
        record.info.pop(READ_ONLY_MARK, None)


def read_only_engine(engine: Engine) -> Engine:
    """The same pool, but every transaction is read-only, enforced by the database:
    PostgreSQL's READ ONLY transactions, SQLite's ``query_only``."""
    return engine.execution_options(**{READ_ONLY: True, "postgresql_readonly": True})


class _Held:
    """The threads' autocommit connections of one engine (:func:`autocommit_connection`)."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.every: list[sa.Connection] = []


_held: weakref.WeakKeyDictionary[Engine, _Held] = weakref.WeakKeyDictionary()
_held_lock = threading.Lock()


def autocommit_connection(engine: Engine) -> sa.Connection:
    """The calling thread's connection for one-statement writes, kept checked out of
    the pool in autocommit between requests: a checkout, the switch to autocommit and
    back, and the check-in's reset cost more CPU than the submission's INSERT. Checked
    without a round trip before each use, as the pool checks at checkout; replaced
    when the server went away, the connection was invalidated (a write that found it
    lost) or the process forked."""
    held = _held.get(engine)
    if held is None:
        with _held_lock:
            held = _held.get(engine)
            if held is None:
                held = _held[engine] = _Held()
                # dispose() (tests, shutdown) closes the pool's connections: these too.
                event.listen(engine, "engine_disposed", _close_held)
    connection: sa.Connection | None = getattr(held.local, "connection", None)
    if connection is not None and held.local.pid == os.getpid():
        if not (connection.closed or connection.invalidated):
            if not _went_away(connection.connection.dbapi_connection):
                return connection
            connection.invalidate()
        with _held_lock:
            held.every.remove(connection)
        connection.close()
    # After a fork the parent's connection is left alone: closing it would end the
    # parent's session (a child does not serve before it builds its own app anyway).
    connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    connection.info[READ_ONLY_MARK] = False
    held.local.connection, held.local.pid = connection, os.getpid()
    with _held_lock:
        held.every.append(connection)
    return connection


def _close_held(engine: Engine) -> None:
    with _held_lock:
        held = _held.pop(engine, None)
    if held is not None:
        for connection in held.every:
            connection.close()
