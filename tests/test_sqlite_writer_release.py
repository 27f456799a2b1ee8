"""SQLite: what a public submission holds the one write lock for, and when a write
transaction lets go of it (issue 13.3).

- The submission seals its payload and binds its parameters before it takes the
  lock: under it run only its INSERTs (prepared, on the driver's cursor) and COMMIT.
- Every write transaction lets go of the writer queue as soon as its COMMIT or
  ROLLBACK returns, not when the connection is back in the pool; the next one on the
  same connection queues again. A COMMIT that failed is rolled back (SQLite keeps
  the transaction open, SQLAlchemy takes it as ended) and lets go too.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import sqlite

from leadvault import inbox_queueing, sqlite_writer
from leadvault.app import runtime
from leadvault.engine import READ_ONLY_MARK, ReadOnlyViolation
from leadvault.models import InboxItem, OutboxAttempt, SpentToken
from leadvault.prepared import Prepared
from tests.conftest import make_form, render_token, unique_email
from tests.hostile import Statements

pytestmark = pytest.mark.committing


@pytest.fixture
def sqlite_app(make_app: Any, backend: str) -> Any:
    if backend != "sqlite":
        pytest.skip("PostgreSQL has no single write lock")
    return make_app()


def _queue_held(engine: sa.Engine) -> bool:
    """Whether a writer queue is held: the main file's or the queue file's (a submission
    takes the latter alone)."""
    writers = sqlite_writer._WRITERS[engine]
    return any(queue.thread_lock.locked() for queue in (writers.main, writers.queue) if queue)


def _submit(app: Any, form_id: str, token: str) -> Any:
    return app.test_client().post(
        f"/f/{form_id}",
        json={"email": unique_email(), "consent": ["newsletter"], "render_token": token},
    )


def _count(app: Any, model: Any) -> int:
    with runtime(app).session_factory() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(model))


def test_a_submission_seals_its_payload_before_it_takes_the_write_lock(sqlite_app, monkeypatch):
    app = sqlite_app
    form_id = make_form(app)
    engine = runtime(app).engine
    held_while_sealing: list[bool] = []
    real_seal = inbox_queueing.seal

    def watched(*args: Any, **kwargs: Any) -> Any:
        held_while_sealing.append(_queue_held(engine))
        return real_seal(*args, **kwargs)

    monkeypatch.setattr(inbox_queueing, "seal", watched)
    token = render_token(app, form_id)
    assert _submit(app, form_id, token).status_code == 200
    assert held_while_sealing == [False], "sealed while holding the write lock"
    assert _count(app, InboxItem) == 1
    # A replay gets the bot reply and queues nothing (it sealed for nothing, unlocked).
    assert _submit(app, form_id, token).status_code == 200
    assert held_while_sealing == [False, False]
    assert _count(app, InboxItem) == 1
    assert _count(app, SpentToken) == 1


def test_a_submission_lets_go_of_the_queue_when_its_commit_returns(sqlite_app):
    """Before its connection is reset and checked in (the pool's reset event comes
    first), the queue is free again."""
    app = sqlite_app
    form_id = make_form(app)
    engine = runtime(app).engine
    token = render_token(app, form_id)
    at_reset: list[bool] = []

    def _reset(_dbapi_connection: Any, _record: Any, _state: Any) -> None:
        at_reset.append(_queue_held(engine))

    event.listen(engine, "reset", _reset)
    try:
        assert _submit(app, form_id, token).status_code == 200
    finally:
        event.remove(engine, "reset", _reset)
    assert at_reset and not any(at_reset), "the queue was held until the check-in"
    assert _count(app, InboxItem) == 1


def _attempt(outbox_id: int) -> sa.Insert:
    return sa.insert(OutboxAttempt).values(
        outbox_id=outbox_id, worker="pytest", attempted_at=dt.datetime.now(dt.UTC)
    )


def test_each_write_transaction_queues_anew_and_lets_go_at_its_end(sqlite_app):
    engine = runtime(sqlite_app).engine
    spend = sa.insert(SpentToken)
    until = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    with engine.connect() as connection:
        connection.begin()
        assert _queue_held(engine)
        connection.execute(spend, {"nonce": "release-1", "expires_at": until})
        connection.commit()
        # Still checked out, the queue is free: another thread writes meanwhile.
        assert not _queue_held(engine)
        other = threading.Thread(target=_write_elsewhere, args=(engine, until))
        other.start()
        other.join(timeout=30)
        assert not other.is_alive()
        # The connection's next write transaction queues again.
        connection.begin()
        assert _queue_held(engine)
        # A failed statement, then its ROLLBACK: the queue is let go.
        with pytest.raises(sa.exc.IntegrityError):
            connection.execute(spend, {"nonce": "release-1", "expires_at": until})
        assert _queue_held(engine)
        connection.rollback()
        assert not _queue_held(engine)
    with engine.connect() as connection:
        assert set(connection.scalars(sa.select(SpentToken.nonce))) == {"release-1", "elsewhere"}


def _write_elsewhere(engine: sa.Engine, until: dt.datetime) -> None:
    with engine.begin() as connection:
        connection.execute(sa.insert(SpentToken), {"nonce": "elsewhere", "expires_at": until})


def test_a_failed_commit_is_rolled_back_and_lets_go_of_the_queue(sqlite_app):
    """SQLite keeps the transaction (and its write lock) open when COMMIT fails, and
    SQLAlchemy takes it as ended: it is rolled back at once, so the connection goes
    back to the pool clean and the queue is free."""
    engine = runtime(sqlite_app).engine
    with engine.connect() as connection:
        connection.begin()
        # Checked at COMMIT: the attempt's outbox row does not exist.
        connection.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
        connection.execute(_attempt(999_999))
        with pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"):
            connection.commit()
        assert not connection.connection.driver_connection.in_transaction
        assert not _queue_held(engine)
        connection.rollback()
        # The connection writes again (a transaction left open: "cannot start a
        # transaction within a transaction").
        connection.begin()
        assert _queue_held(engine)
        connection.rollback()
    assert not _queue_held(engine)
    assert _count(sqlite_app, OutboxAttempt) == 0


def test_a_prepared_sqlite_statement_runs_as_sqlalchemys_would(sqlite_app):
    """Positional (qmark) parameters bound by the columns' types; the engine's guards
    and counters see it; driver errors come out as SQLAlchemy's."""
    engine = runtime(sqlite_app).engine
    insert = Prepared(sa.insert(SpentToken), engine.dialect)
    until = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    row = {"nonce": "prepared", "spent_at": until, "expires_at": until}
    with engine.connect() as connection:
        connection.begin()
        with Statements() as statements:
            assert insert.bind(row).rowcount(connection) == 1
        assert statements.kinds() == ["INSERT spent_tokens"]
        with pytest.raises(sa.exc.IntegrityError):
            insert.bind(row).rowcount(connection)
        connection.commit()
        connection.info[READ_ONLY_MARK] = True
        connection.begin()
        with pytest.raises(ReadOnlyViolation):
            insert.bind({**row, "nonce": "refused"}).rowcount(connection)
        connection.rollback()
    with runtime(sqlite_app).session_factory() as s:
        [(expires_at,)] = s.execute(sa.select(SpentToken.expires_at))
    assert expires_at == until  # stored as SQLAlchemy stores it, read back the same


def test_sqlite_statements_compile_to_positional_parameters():
    statement = Prepared(sqlite.insert(SpentToken).on_conflict_do_nothing(), sqlite.dialect())
    bound = statement.bind(
        {
            "nonce": "n",
            "spent_at": dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
            "expires_at": dt.datetime(2030, 1, 2, tzinfo=dt.UTC),
        }
    )
    assert statement.sql.count("?") == 3
    assert isinstance(bound.values, tuple) and bound.values[0] == "n"
    assert all(isinstance(value, str) for value in bound.values[1:])  # SQLite's text dates
