"""Engine, sessions and the one-transaction-per-request rule.

Services receive a :class:`Session` and only ``flush()``; the request (or job)
boundary commits or rolls back exactly once. The session carries the settings
and the vault in ``session.info`` so services need no Flask globals.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import select
import shutil
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from leadvault import sqlite_writer
from leadvault.sqlite_writer import READ_ONLY

if TYPE_CHECKING:
    from flask import Flask, Response

    from leadvault.crypto import Vault
    from leadvault.settings import Settings

log = logging.getLogger("leadvault.db")

# Indico-style naming convention so every constraint has a stable, portable name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """Timezone-aware UTC timestamps on both SQLite (naive) and PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        return _bind_utc(value)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)

    def bind_processor(self, dialect: Any) -> Any:
        """:meth:`process_bind_param` and the dialect's own conversion as one function.

        A worker's batch binds ~17 timestamps per lead; SQLAlchemy's composition is
        three Python calls per value (this type's wrapper, ``process_bind_param``, on
        SQLite the DATETIME type's formatting through a dict), a few per cent of the
        inbox stage. Same values: a UTC datetime as it is, any other aware one
        converted, a naive one refused; on SQLite the same text as SQLite's DATETIME
        with its default storage format (tests/test_utc_datetime.py)."""
        impl_processor = self.impl_instance.bind_processor(dialect)
        if impl_processor is None:
            return _bind_utc
        if _plain_sqlite_datetime(self.impl_instance):
            return _bind_utc_sqlite_text
        return lambda value: impl_processor(_bind_utc(value))


def _bind_utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    zone = value.tzinfo
    if zone is dt.UTC:
        return value
    if zone is None:
        raise ValueError("naive datetimes are not stored; use leadvault.clock.now()")
    return value.astimezone(dt.UTC)


def _bind_utc_sqlite_text(value: dt.datetime | None) -> str | None:
    """SQLite's DATETIME text ("YYYY-MM-DD HH:MM:SS.ffffff", the UTC wall time): the
    first 26 characters of the UTC value's ISO form with that separator and always
    six digits of microseconds (its year always has four digits)."""
    utc = _bind_utc(value)
    return None if utc is None else utc.isoformat(" ", "microseconds")[:26]


def _plain_sqlite_datetime(impl: Any) -> bool:
    """SQLite's DATETIME with its default storage format (its text is known)."""
    from sqlalchemy.dialects.sqlite import DATETIME

    return type(impl) is DATETIME and impl._storage_format == DATETIME._storage_format


def create_engine(url: str, *, pool_size: int = 10) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        sqlite_writer.configure(engine)
    else:
        # No pre-ping (a round trip per checkout, a fifth of a submission's time): a
        # connection the server dropped is noticed locally at checkout and replaced.
        engine = sa.create_engine(url, pool_size=pool_size, max_overflow=20, pool_recycle=3600)
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


_READ_ONLY_SESSION = "leadvault.read_only_session"
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
        if connection.info.get(_READ_ONLY_SESSION) and _WRITES.match(statement):
            raise ReadOnlyViolation("a read-only request (GET, HEAD, OPTIONS) tried to write")

    @event.listens_for(engine, "checkin")
    def _forget(_dbapi_connection: Any, record: Any) -> None:
        record.info.pop(_READ_ONLY_SESSION, None)


def _mark_connection(session: Session, _transaction: Any, connection: sa.Connection) -> None:
    # Every session of ours marks the connection it begins on: read-only or not.
    connection.info[_READ_ONLY_SESSION] = bool(session.info.get("read_only"))


# Methods that must never change state: link scanners, prefetchers and link
# checkers use them. Their requests run in read-only transactions.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def read_only_engine(engine: Engine) -> Engine:
    """The same pool, but every transaction is read-only, enforced by the database:
    PostgreSQL's READ ONLY transactions, SQLite's ``query_only``."""
    return engine.execution_options(**{READ_ONLY: True, "postgresql_readonly": True})


def make_session_factory(
    engine: Engine, settings: Settings, vault: Vault, *, read_only: bool = False
) -> sessionmaker[Session]:
    factory = sessionmaker(
        bind=read_only_engine(engine) if read_only else engine,
        expire_on_commit=False,
        info={"settings": settings, "vault": vault, "read_only": read_only},
    )
    event.listen(factory, "after_begin", _mark_connection)
    if engine.dialect.name == "sqlite" and not read_only:
        event.listen(factory, "after_commit", _wal_checkpoint)
    return factory


def _wal_checkpoint(session: Session) -> None:
    # After an erasure the WAL still holds the old pages (with the wrapped data
    # key) until a checkpoint copies them back, zeroed, and truncates the file.
    if not session.info.pop("wal_checkpoint", False):
        return
    bind = session.get_bind()
    if isinstance(bind, sa.Connection):
        return  # inside an outer transaction (the tests'): nothing left the transaction yet
    raw = bind.raw_connection()  # outside any transaction
    try:
        raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        raw.close()


def settings_of(session: Session) -> Settings:
    return session.info["settings"]


def vault_of(session: Session) -> Vault:
    return session.info["vault"]


def mail_context(
    session: Session, lang: str, *, time_zone: dt.tzinfo | None = None, **extra: Any
) -> dict[str, Any]:
    """Template context for a mail in ``lang`` (see ``i18n.template_context``); dates and
    times in ``time_zone`` (a lead's: ``leads.zone_of``), else the instance's."""
    from leadvault import branding, i18n

    settings = settings_of(session)
    # is_mail: the `defuse` filter breaks links in what a lead typed (clients autolink).
    return i18n.template_context(
        lang,
        settings.imprint_url,
        settings.privacy_url,
        is_mail=True,
        brand=branding.brand_of(settings),
        time_zone=time_zone or settings.zone,
        **extra,
    )


def dialect_of(session: Session) -> str:
    return session.get_bind().dialect.name


@contextlib.contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction for a CLI command or a job: commit on success, else roll back."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# Below this much free space where the SQLite database lives, writes are refused
# before they fail half-way (a WAL append, a checkpoint).
MIN_FREE_BYTES = 8 * 1024 * 1024


def probe_write(factory: sessionmaker[Session]) -> str | None:
    """Whether the database takes a write now: None if so, else a one-word reason
    (``locked``, ``read-only``, ``full``, ``unavailable``). Begins a write
    transaction (SQLite: takes the write lock; PostgreSQL: asks whether it may write)
    and rolls it back: nothing is written.
    May wait as long as the database makes it (see ``web.healthz``'s deadline)."""
    session = factory()
    try:
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            # A standby, or a server or role set to read-only transactions.
            refused = connection.scalar(
                sa.text(
                    "SELECT current_setting('transaction_read_only') = 'on' OR pg_is_in_recovery()"
                )
            )
            if refused:
                return "read-only"
        else:
            folder = Path(connection.engine.url.database or ".").resolve().parent
            if shutil.disk_usage(folder).free < MIN_FREE_BYTES:
                return "full"
        return None
    except TimeoutError:
        return "locked"  # the writer queue's own timeout
    except sa.exc.DBAPIError as exc:
        return _failure_reason(exc)
    finally:
        session.rollback()
        session.close()


def _failure_reason(exc: sa.exc.DBAPIError) -> str:
    """A word for why the database refused (from the driver's message; never echoed)."""
    text = str(exc.orig).lower()
    for reason, words in (
        ("locked", ("locked", "lock timeout", "busy")),
        ("read-only", ("read-only", "readonly", "read only")),
        ("full", ("full", "no space")),
    ):
        if any(word in text for word in words):
            return reason
    return "unavailable"


@contextlib.contextmanager
def read_only(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for work that only reads, however long (exports): rolled back at the
    end; on SQLite it holds no write lock, so writers are not held up meanwhile."""
    session = factory()
    try:
        session.connection(execution_options={READ_ONLY: True})
        yield session
    finally:
        session.rollback()
        session.close()


@contextlib.contextmanager
def short_write(
    factory: sessionmaker[Session], *, one_statement: bool = False
) -> Iterator[sa.Connection]:
    """One short write transaction on a Core connection of its own, committed when the
    block ends and rolled back when it raises: for the public submission, a row or two
    written with prepared statements, without an ORM session's begin, autoflush and
    commit machinery around them (that machinery cost more than the two INSERTs).
    On SQLite the write lock is taken at the start (see ``sqlite_writer._WriterQueue``) and let go
    when the block ends, so nothing else may run in the block.

    ``one_statement``: the block runs one statement, in autocommit: its own transaction,
    durable when it returns (one round trip on PostgreSQL, not BEGIN, it and COMMIT).
    Its failure is a :class:`CommitFailed` unless the connection was lost (then the
    caller may write again, on a fresh connection, if a second run cannot store twice).

    Where ``factory`` is bound to a connection in a transaction (the test suite's),
    the block is a savepoint of it, as the factory's sessions are."""
    bind = factory.kw["bind"]
    if isinstance(bind, sa.Connection):
        with bind.begin_nested():
            # A write, as a read-write session's: the shared connection may carry the
            # mark of a read-only session that used it before (_mark_connection).
            bind.info[_READ_ONLY_SESSION] = False
            yield bind
        return
    if one_statement:
        try:
            yield _autocommit_connection(bind)
        except sa.exc.DBAPIError as exc:
            if exc.connection_invalidated:
                raise
            raise CommitFailed(exc) from exc
        return
    with bind.connect() as connection:
        transaction = connection.begin()
        connection.info[_READ_ONLY_SESSION] = False
        try:
            yield connection
        except BaseException:
            transaction.rollback()
            raise
        try:
            transaction.commit()
        except sa.exc.SQLAlchemyError as exc:
            # Not retried: a commit that failed on the wire may have happened.
            raise CommitFailed(exc) from exc


@contextlib.contextmanager
def write_beside(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A short write transaction of its own beside a read-only request's, committed
    when the block ends: for the one record a GET must leave (the audit entry of a
    page that shows decrypted personal data). Where ``factory`` shares the test
    suite's connection, that connection gets its read-only mark back afterwards, so
    the rest of the GET stays guarded (see :func:`_mark_connection`)."""
    bind = factory.kw["bind"]
    shared = isinstance(bind, sa.Connection)
    mark = bind.info.get(_READ_ONLY_SESSION) if shared else None
    try:
        with unit_of_work(factory) as session:
            yield session
    finally:
        if shared:
            bind.info[_READ_ONLY_SESSION] = mark


class _Held:
    """The threads' autocommit connections of one engine (:func:`_autocommit_connection`)."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.every: list[sa.Connection] = []


_held: weakref.WeakKeyDictionary[Engine, _Held] = weakref.WeakKeyDictionary()
_held_lock = threading.Lock()


def _autocommit_connection(engine: Engine) -> sa.Connection:
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
    connection.info[_READ_ONLY_SESSION] = False
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


class CommitFailed(Exception):
    """The commit of a :func:`short_write` failed (``error``): answer with
    :func:`commit_failed`, as a request's failed commit is answered."""

    def __init__(self, error: sa.exc.SQLAlchemyError) -> None:
        super().__init__(type(error).__name__)
        self.error = error


# --- Flask wiring -----------------------------------------------------------

_G_KEY = "leadvault_session"


def init_app(app: Flask) -> None:
    from flask import current_app, g

    def _finish(response: Response) -> Response:
        session: Session | None = g.pop(_G_KEY, None)
        if session is None:
            return response
        try:
            # Commit before the response leaves, so a 2xx means "stored". A refusal
            # that must leave a trace (a failed sign-in's audit entry) says so.
            if response.status_code < 400 or g.pop("commit_despite_error", False):
                session.commit()
                if g.pop("wake_worker", False):
                    current_app.extensions["leadvault"].wake.set()
            else:
                session.rollback()
        except sa.exc.SQLAlchemyError as exc:
            session.rollback()
            return commit_failed(exc)
        finally:
            session.close()
        return response

    def _teardown(_exc: BaseException | None) -> None:
        session: Session | None = g.pop(_G_KEY, None)
        if session is not None:
            session.rollback()
            session.close()

    app.after_request(_finish)
    app.teardown_request(_teardown)


def commit_failed(exc: sa.exc.SQLAlchemyError) -> Response:
    """The commit failed: nothing was stored. One log line (the error's type and the
    route, never its message or a traceback: both can hold data) and a 503 page (409
    when a unique row was written by another request at the same moment)."""
    from flask import make_response, request

    from leadvault.web import error_response

    origin = getattr(exc, "orig", None) or exc
    log.error(
        "commit failed: %s (%s) at %s %s",
        type(exc).__name__,
        type(origin).__name__,
        request.method,
        request.url_rule,
    )
    status = 409 if isinstance(exc, sa.exc.IntegrityError) else 503
    body, code = error_response(status)
    return make_response(body, code)


def discard_session() -> None:
    """Roll back and drop the request's session (a connection the server dropped
    mid-request): the next :func:`session` opens a new one on a fresh connection."""
    from flask import g

    current: Session | None = g.pop(_G_KEY, None)
    if current is not None:
        current.rollback()
        current.close()


def session() -> Session:
    """The request's session, opened on first use; read-only for GET, HEAD and OPTIONS."""
    from flask import current_app, g, request

    current = g.get(_G_KEY)
    if current is None:
        runtime = current_app.extensions["leadvault"]
        factory = (
            runtime.read_only_session_factory
            if request.method in SAFE_METHODS
            else runtime.session_factory
        )
        current = factory()
        g.setdefault(_G_KEY, current)
    return current
