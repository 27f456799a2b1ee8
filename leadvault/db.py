"""Sessions and the one-transaction-per-request rule.

Services receive a :class:`Session` and only ``flush()``; the request (or job)
boundary commits or rolls back exactly once. The session carries the settings
and the vault in ``session.info`` so services need no Flask globals. The engine
under the sessions is :mod:`leadvault.engine`; the models' base is
:mod:`leadvault.model_base`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from leadvault.engine import READ_ONLY_MARK, autocommit_connection, read_only_engine
from leadvault.sqlite_writer import READ_ONLY, WRITES

if TYPE_CHECKING:
    from flask import Flask, Response

    from leadvault.crypto import Vault
    from leadvault.settings import Settings

log = logging.getLogger("leadvault.db")


def _mark_connection(session: Session, _transaction: Any, connection: sa.Connection) -> None:
    # Every session of ours marks the connection it begins on: read-only or not.
    connection.info[READ_ONLY_MARK] = bool(session.info.get("read_only"))


# Methods that must never change state: link scanners, prefetchers and link
# checkers use them. Their requests run in read-only transactions.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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
    May wait as long as the database makes it (see ``health.healthz``'s deadline)."""
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
    factory: sessionmaker[Session], *, one_statement: bool = False, files: str | None = None
) -> Iterator[sa.Connection]:
    """One short write transaction on a Core connection of its own, committed when the
    block ends and rolled back when it raises: for the public submission, a row or two
    written with prepared statements, without an ORM session's begin, autoflush and
    commit machinery around them (that machinery cost more than the two INSERTs).
    On SQLite the write lock is taken at the start (see ``sqlite_writer._WriterQueue``) and let go
    as soon as the COMMIT (or ROLLBACK) returns, so nothing else may run in the block:
    seal, encode and bind before it (``prepared.Prepared.bind``), run only the
    statements in it.

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
            bind.info[READ_ONLY_MARK] = False
            yield bind
        return
    if one_statement:
        try:
            yield autocommit_connection(bind)
        except sa.exc.DBAPIError as exc:
            if exc.connection_invalidated:
                raise
            raise CommitFailed(exc) from exc
        return
    with bind.connect() as connection:
        if files is not None:
            connection.execution_options(**{WRITES: files})  # in place
        transaction = connection.begin()
        connection.info[READ_ONLY_MARK] = False
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
    mark = bind.info.get(READ_ONLY_MARK) if shared else None
    try:
        with unit_of_work(factory) as session:
            yield session
    finally:
        if shared:
            bind.info[READ_ONLY_MARK] = mark


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
