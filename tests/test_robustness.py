"""Robustness (issue 10.11).

- ``/healthz`` answers JSON within 2 s, 503 with the reason when the database
  cannot take a write (SQLite locked by another process, PostgreSQL read-only),
  instead of waiting for the lock or saying "ok" because a read still works.
- A failed commit gives a 503 page and one log line (type and place, no
  traceback, no data); nothing is stored.
- Retry backoff is capped for attempt counts of any size.
- A race on a unique insert (API tokens, rule versions) answers 409 or retries,
  never 500.
- Files Leadvault creates are 0600, folders 0700, and an existing instance
  folder is tightened at start.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sqlite3
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from leadvault import api, leases
from leadvault.app import runtime
from leadvault.db import unit_of_work
from leadvault.models import ApiToken, InboxItem
from scoring import rules
from scoring.models import RuleSet
from tests.conftest import make_form, render_token, unique_email
from tests.test_run import clean_env, leadvault_executable

# --- backoff ------------------------------------------------------------------------


@pytest.mark.parametrize("attempts", [1025, 10**6, 2**63, 10**30])
def test_backoff_is_capped_for_any_attempt_count(attempts):
    assert leases.backoff(0.2, attempts) == dt.timedelta(hours=6)
    assert leases.backoff(1e300, attempts) == dt.timedelta(hours=6)


def test_backoff_doubles_from_the_first_retry():
    assert [leases.backoff(1.0, n).total_seconds() for n in (0, 1, 2, 3)] == [1, 1, 2, 4]


# --- /healthz -------------------------------------------------------------------------


def _timed_health(client: Any) -> tuple[Any, float]:
    start = time.monotonic()
    response = client.get("/healthz")
    return response, time.monotonic() - start


@pytest.mark.committing
def test_healthz_says_503_within_2s_when_sqlite_is_locked(app, backend):
    if backend != "sqlite":
        pytest.skip("another process holding SQLite's write lock")
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    other = sqlite3.connect(runtime(app).engine.url.database, isolation_level=None, timeout=1)
    other.execute("BEGIN IMMEDIATE")  # another process writing, for as long as it likes
    try:
        for _ in range(2):  # the second while the first probe still waits: at once
            response, elapsed = _timed_health(client)
            assert response.status_code == 503
            assert response.is_json
            assert response.get_json() == {"status": "unavailable", "database": "locked"}
            assert elapsed < 2.0
    finally:
        other.execute("ROLLBACK")
        other.close()
    deadline = time.monotonic() + 40
    while client.get("/healthz").status_code != 200:  # the lock is gone: ok again
        assert time.monotonic() < deadline
        time.sleep(0.2)


@pytest.mark.committing
def test_healthz_says_503_when_postgresql_is_read_only(app, backend):
    if backend != "postgresql":
        pytest.skip("a read-only PostgreSQL (a standby, default_transaction_read_only)")
    engine = runtime(app).engine
    client = app.test_client()
    assert client.get("/healthz").status_code == 200

    def read_only(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET default_transaction_read_only = on")
        dbapi_connection.commit()

    engine.dispose()
    event.listen(engine, "connect", read_only)
    try:
        response, elapsed = _timed_health(client)
    finally:
        event.remove(engine, "connect", read_only)
        engine.dispose()
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "database": "read-only"}
    assert elapsed < 2.0


# --- a failed commit ----------------------------------------------------------------


@pytest.mark.committing
def test_a_failed_commit_is_a_503_page_and_one_log_line(app, backend, caplog):
    if backend != "postgresql":
        pytest.skip("a deferred constraint trigger makes PostgreSQL's COMMIT itself fail")
    engine = runtime(app).engine
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "CREATE FUNCTION lv_test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' "
                "USING ERRCODE = 'disk_full'; END $$"
            )
        )
        connection.execute(
            sa.text(
                "CREATE CONSTRAINT TRIGGER lv_test_disk_full AFTER INSERT ON inbox "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION lv_test_disk_full()"
            )
        )
    try:
        form_id = make_form(app)
        email = unique_email("full")
        caplog.set_level(logging.INFO)
        caplog.clear()
        response = app.test_client().post(
            f"/f/{form_id}",
            data={
                "email": email,
                "consent": "newsletter",
                "render_token": render_token(app, form_id),
            },
            headers={"Accept": "text/html"},
        )
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text("DROP TRIGGER lv_test_disk_full ON inbox"))
            connection.execute(sa.text("DROP FUNCTION lv_test_disk_full()"))
    assert response.status_code == 503
    page = response.get_data(as_text=True)
    assert "The service is busy" in page
    assert email not in page and "No space" not in page
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    line = errors[0].getMessage()
    assert line == "commit failed: OperationalError (DiskFull) at POST /f/<form_id>", line
    assert errors[0].exc_info is None and "\n" not in line
    assert email not in caplog.text
    with runtime(app).session_factory() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(InboxItem)) == 0


def test_a_unique_row_written_meanwhile_is_a_409(make_app):
    from leadvault.web import csrf

    app = make_app()

    @app.post("/_test/token")
    @csrf.exempt
    def token() -> Any:
        from leadvault import db

        # What a check-then-insert meets when another request inserted first.
        session = db.session()
        session.add(ApiToken(name="twice", token_hash="a" * 64, scopes=[]))
        session.flush()
        session.add(ApiToken(name="twice", token_hash="b" * 64, scopes=[]))
        session.flush()
        return "not reached"

    response = app.test_client().post("/_test/token", headers={"Accept": "application/json"})
    assert response.status_code == 409
    assert response.get_json()["error"].startswith("This was changed by another request")


# --- races on unique inserts ----------------------------------------------------------


def _race(app: Any, first: Any, second: Any) -> list[Any]:
    """``first`` inserts and holds its transaction open while ``second`` (in another
    thread, on its own connection) passes the same check and waits on the unique
    index; then ``first`` commits. Returns what ``second`` returned or raised."""
    factory = runtime(app).session_factory
    outcome: list[Any] = []
    with app.app_context(), unit_of_work(factory) as s:
        first(s)
        s.flush()

        def other() -> None:
            try:
                with app.app_context(), unit_of_work(factory) as s2:
                    outcome.append(second(s2))
            except Exception as exc:
                outcome.append(exc)

        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.5)  # the other insert now waits for this transaction
        assert thread.is_alive()
    thread.join(10)
    return outcome


@pytest.mark.committing
def test_api_token_race_is_refused_not_a_500(app, backend):
    if backend != "postgresql":
        pytest.skip("SQLite takes its write lock at BEGIN: two writers never overlap")
    [result] = _race(
        app,
        lambda s: api.create_token(s, "crm", ["consent:read"]),
        lambda s: api.create_token(s, "crm", ["consent:read"]),
    )
    assert isinstance(result, api.ApiTokenError), result
    assert "exists already" in str(result)


@pytest.mark.committing
def test_rule_version_race_takes_the_next_number(app, backend):
    if backend != "postgresql":
        pytest.skip("SQLite takes its write lock at BEGIN: two writers never overlap")
    text = rules.example_text()
    [result] = _race(
        app,
        lambda s: rules.load(s, text, source="a.toml"),
        lambda s: rules.load(s, text, source="b.toml").version,
    )
    assert result == 2
    with runtime(app).session_factory() as s:
        rows = s.execute(sa.select(RuleSet.version, RuleSet.active).order_by(RuleSet.version))
        assert [tuple(r) for r in rows] == [(1, False), (2, True)]


# --- file modes -------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.committing
def test_instance_folder_is_private_and_tightened_at_start(tmp_path):
    instance = tmp_path / "instance"
    (instance / "assets").mkdir(parents=True)
    instance.chmod(0o755)
    (instance / "assets").chmod(0o775)
    old_asset = instance / "assets" / "guide.pdf"
    old_asset.write_bytes(b"%PDF-1.4\n")
    old_asset.chmod(0o644)
    # A database left world-readable by an older version, with its WAL.
    database = instance / "leadvault.db"
    connection = sqlite3.connect(database)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE t (x)")
    connection.commit()
    connection.close()
    database.chmod(0o644)
    env = {**clean_env(), "LEADVAULT_INSTANCE": str(instance)}
    done = subprocess.run(
        [leadvault_executable(), "db", "upgrade"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert _mode(instance) == 0o700
    assert _mode(instance / "assets") == 0o700
    assert _mode(old_asset) == 0o600
    created = [p for p in instance.rglob("*") if p.is_file()]
    names = {"leadvault.db", "leadvault-queue.db", "keyring.json", "guide.pdf"}
    assert {p.name for p in created} >= names
    assert {p.name: _mode(p) for p in created} == {p.name: 0o600 for p in created}


def test_assets_and_mail_files_are_created_private(app, tmp_path):
    from leadvault.mail import FileSender, MailContent, build_message
    from widgets import service

    previous = os.umask(0o022)  # as a careless service manager would leave it
    try:
        source = tmp_path / "guide.pdf"
        source.write_bytes(b"%PDF-1.4\n%%EOF\n")
        with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
            service.add_asset(s, source, title="Guide")
            folder = runtime(app).settings.assets_folder
        mails = tmp_path / "mails"
        FileSender(mails, echo=False).send(
            build_message(
                MailContent(to="ada@example.org", subject="x", text="x", html="x"),
                mail_from="news@example.org",
            )
        )
    finally:
        os.umask(previous)
    assert _mode(folder) == 0o700
    assert [_mode(p) for p in folder.iterdir()] == [0o600]
    assert _mode(mails) == 0o700
    assert [_mode(p) for p in mails.iterdir()] == [0o600]
