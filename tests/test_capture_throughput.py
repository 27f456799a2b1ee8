"""The submission path under load (issue 13, points 3 and 4).

- Pages read with GET (and the preflight, OPTIONS) never take SQLite's write lock:
  they answer while another process holds it (a worker's batch, a long write).
- On PostgreSQL a connection the server dropped (``pg_terminate_backend``, a
  restart) turns no submission into an error page and loses none: a pooled one
  is replaced at checkout, one dropped mid-request is written on again.
- A submission costs one prepared INSERT per single-use token and one for the
  inbox row, whatever came before.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from leadvault import sqlite_writer
from leadvault.app import runtime
from leadvault.models import InboxItem, SpentToken
from tests.conftest import make_form, render_token, unique_email
from tests.hostile import Statements


def _submit(app: Any, client: Any, form_id: str, email: str, token: str | None = None) -> Any:
    return client.post(
        f"/f/{form_id}",
        json={
            "email": email,
            "consent": ["newsletter"],
            "render_token": token or render_token(app, form_id),
        },
    )


def _count(app: Any, model: Any) -> int:
    with runtime(app).session_factory() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(model))


@pytest.mark.committing
def test_get_pages_answer_while_another_process_holds_the_sqlite_write_lock(app, backend):
    if backend != "sqlite":
        pytest.skip("SQLite's one writer")
    form_id = make_form(app)
    engine = runtime(app).engine

    @event.listens_for(engine, "connect")
    def _wait_briefly(dbapi_connection: Any, _record: Any) -> None:
        # A page that wanted the write lock fails within 0.2 s instead of waiting 30 s.
        dbapi_connection.execute("PRAGMA busy_timeout=200")

    engine.dispose()
    client = app.test_client()
    token = render_token(app, form_id)
    pages = ["/", f"/f/{form_id}", f"/f/{form_id}/config", "/brand.css"]
    assert [client.get(page).status_code for page in pages] == [200] * len(pages)
    other = sqlite3.connect(engine.url.database, isolation_level=None, timeout=1)
    other.execute("ATTACH DATABASE ? AS queue", (sqlite_writer.queue_path(engine.url.database),))
    # Another process writing both files (the main one and the queue file, which
    # submissions write), for as long as it likes.
    other.execute("BEGIN IMMEDIATE")
    try:
        for page in pages:
            response = client.get(page)
            assert response.status_code == 200, page
            assert client.head(page).status_code == 200, page
        config = client.get(f"/f/{form_id}/config").get_json()
        assert config["render_token"]  # the form renders a token without writing
        preflight = client.options(f"/f/{form_id}", headers={"Origin": "https://www.example.com"})
        assert preflight.status_code == 204
        # A submission does wait for the lock: it is refused, not half-written.
        refused = _submit(app, client, form_id, unique_email(), token)
        assert refused.status_code == 503
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert _count(app, InboxItem) == 0
    # A process writing the main file alone (the worker storing a batch of leads) holds
    # up no submission: they are in the queue file.
    token = render_token(app, form_id)
    other = sqlite3.connect(engine.url.database, isolation_level=None, timeout=1)
    other.execute("BEGIN IMMEDIATE")
    try:
        assert _submit(app, client, form_id, unique_email(), token).status_code == 200
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert _count(app, InboxItem) == 1
    assert _submit(app, client, form_id, unique_email()).status_code == 200
    assert _count(app, InboxItem) == 2


def _record_backends(app: Any) -> list[int]:
    """From now on, the server process of every connection the app's pool opens.

    Only the app's own connections are ever terminated: other connections on the
    same database (the test session's, another test's) must not be dropped.
    """
    opened: list[int] = []
    engine = runtime(app).engine

    @event.listens_for(engine, "connect")
    def _record(dbapi_connection: Any, _record: Any) -> None:
        opened.append(dbapi_connection.info.backend_pid)

    engine.dispose()  # connections opened before this are not recorded: close them
    return opened


def _alive(app: Any, pids: list[int]) -> list[int]:
    """Those of ``pids`` whose server process still runs."""
    admin = sa.create_engine(runtime(app).engine.url, poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as connection:
            running = connection.scalars(sa.text("SELECT pid FROM pg_stat_activity"))
            return sorted(set(pids) & set(running))
    finally:
        admin.dispose()


def _terminate(app: Any, pids: list[int]) -> None:
    admin = sa.create_engine(runtime(app).engine.url, poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as connection:
            for pid in pids:
                assert connection.scalar(sa.text(f"SELECT pg_terminate_backend({int(pid)})"))
    finally:
        admin.dispose()


@pytest.mark.committing
def test_submissions_survive_postgresql_dropping_the_pooled_connections(app, backend):
    if backend != "postgresql":
        pytest.skip("a server that drops connections")
    form_id = make_form(app)
    client = app.test_client()
    opened = _record_backends(app)
    assert _submit(app, client, form_id, unique_email()).status_code == 200
    token = render_token(app, form_id)
    pids = _alive(app, opened)
    assert pids  # the pool keeps its connection between requests
    _terminate(app, pids)  # as a restart or an idle timeout would
    assert _submit(app, client, form_id, unique_email(), token).status_code == 200
    assert _count(app, InboxItem) == 2
    assert _alive(app, opened)  # new connections carried the submission
    assert set(_alive(app, opened)).isdisjoint(pids)


@pytest.mark.committing
def test_a_connection_dropped_mid_submission_is_written_on_again(app, backend):
    if backend != "postgresql":
        pytest.skip("a server that drops connections")
    form_id = make_form(app)
    client = app.test_client()
    assert _submit(app, client, form_id, unique_email()).status_code == 200
    token = render_token(app, form_id)
    engine = runtime(app).engine
    dropped: list[int] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _drop_first_insert(connection: Any, *_args: Any) -> None:
        # After the checkout (which found the connection alive), before its first write.
        if not dropped:
            pid = connection.connection.driver_connection.info.backend_pid
            dropped.append(pid)
            _terminate(app, [pid])

    try:
        response = _submit(app, client, form_id, unique_email(), token)
    finally:
        event.remove(engine, "before_cursor_execute", _drop_first_insert)
    assert dropped
    assert response.status_code == 200
    assert json.loads(response.data)["status"] == "ok"
    assert _count(app, InboxItem) == 2  # stored once: nothing lost, nothing twice
    assert _count(app, SpentToken) == 2


def test_a_submission_is_one_insert_per_token_and_one_for_the_inbox(app, client, backend):
    form_id = make_form(app)
    assert _submit(app, client, form_id, unique_email()).status_code == 200
    token = render_token(app, form_id)
    with Statements() as statements:
        response = client.post(
            f"/f/{form_id}",
            json={"email": unique_email(), "consent": ["newsletter"], "render_token": token},
        )
    assert response.status_code == 200
    # Nothing read (the form is cached), nothing but the two rows written; on
    # PostgreSQL both in one statement (one round trip, in autocommit when served).
    if backend == "sqlite":
        assert statements.kinds() == ["INSERT spent_tokens", "INSERT inbox"]
    else:
        [statement] = [s for s in statements.seen if not s.startswith(("SAVEPOINT", "RELEASE"))]
        assert statement.startswith("WITH spent_0 AS (INSERT INTO spent_tokens ")
        assert " INSERT INTO inbox " in statement
    assert _count(app, InboxItem) == 2
    # The token is spent: sent again, it gets the bot reply and nothing is queued.
    replay = client.post(
        f"/f/{form_id}",
        json={"email": unique_email(), "consent": ["newsletter"], "render_token": token},
    )
    assert replay.status_code == 200 and replay.get_json()["status"] == "ok"
    assert _count(app, InboxItem) == 2


@pytest.mark.committing
def test_a_replayed_token_does_not_count_against_the_address(make_app):
    """The address's limit is counted before the write and given back for a replay."""
    app = make_app(rate_limit_email="2/minute")
    form_id = make_form(app)
    client = app.test_client()
    email = unique_email()
    token = render_token(app, form_id)
    assert _submit(app, client, form_id, email, token).status_code == 200
    for _ in range(3):  # replays: the bot reply, not counted
        assert _submit(app, client, form_id, email, token).status_code == 200
    assert _count(app, InboxItem) == 1
    assert _submit(app, client, form_id, email).status_code == 200
    assert _submit(app, client, form_id, email).status_code == 429  # the third counted
    assert _count(app, InboxItem) == 2


@pytest.mark.parametrize(
    "email",
    [
        "Someone@Example.COM",
        "  padded@example.com  ",
        "müller@BÜCHER.de",
        "user@xn--bcher-kva.de",
        "Ångström@example.org",  # decomposed Å: NFC makes it one character
        "first.last+tag@sub.example.co.uk",
    ],
)
def test_the_address_checked_once_gives_the_same_blind_index(app, email):
    """The endpoint checks an address once and takes its blind index from that check;
    it must be the index every other path (the worker, lookups) computes from the text."""
    from capture import submission_checks
    from capture.models import Form

    form = Form(public_id="x", fields=[], purposes=[{"purpose": "newsletter", "required": True}])
    valid, errors = submission_checks.validate_submission(
        form, {"email": email, "consent": ["newsletter"]}, "en", check_deliverability=False
    )
    assert errors == {} and valid is not None
    assert valid.email_index_form is not None
    vault = runtime(app).vault
    assert vault.blind_index_of_form(valid.email_index_form) == vault.blind_index(email)


@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("not an address", "Please enter a valid email address, like name@example.com."),
        ("a@" + "b" * 250 + ".de", "Please use at most 254 characters."),
        ("", "Please enter your email address."),
    ],
)
def test_a_bad_address_gets_its_one_message_and_nothing_else(email, message):
    from capture import submission_checks
    from capture.models import Form

    form = Form(public_id="x", fields=[], purposes=[{"purpose": "newsletter", "required": True}])
    valid, errors = submission_checks.validate_submission(
        form, {"email": email, "consent": []}, "en", check_deliverability=False
    )
    assert valid is None
    # The consent's own error is not reported while the address is wrong (as before).
    assert errors == {"email": message}
