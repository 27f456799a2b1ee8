"""SQLite: what the public endpoint writes lives in a file of its own (issue 13.3), so a
submission never waits for the write lock the worker holds while it stores leads."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from leadvault import db, migrate, sqlite_backup, sqlite_writer
from leadvault.engine import create_engine
from tests.test_run import leadvault_in

SPEND = sa.text("INSERT INTO spent_tokens (nonce, spent_at, expires_at) VALUES (:n, :t, :t)")


@pytest.fixture
def engine(tmp_path: Path):
    engine = create_engine(f"sqlite:///{tmp_path / 'leadvault.db'}")
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def tables_in(engine: sa.Engine, schema: str) -> set[str]:
    return set(sa.inspect(engine).get_table_names(schema=schema))


def test_the_endpoints_tables_are_in_the_queue_file(engine, tmp_path):
    assert sqlite_writer.queue_path(str(tmp_path / "leadvault.db")) == str(
        tmp_path / "leadvault-queue.db"
    )
    assert (tmp_path / "leadvault-queue.db").exists()
    assert tables_in(engine, "queue") == set(sqlite_writer.QUEUE_TABLES)
    assert not tables_in(engine, "main") & set(sqlite_writer.QUEUE_TABLES)
    assert "leads" in tables_in(engine, "main")
    assert migrate.differences(engine) == []


def test_the_migration_moves_the_rows_both_ways(engine):
    until = dt.datetime(2030, 1, 1)
    with engine.begin() as connection:
        connection.execute(
            SPEND,
            {"n": "kept", "t": until},
        )
    migrate.downgrade(engine, "0024")
    assert set(sqlite_writer.QUEUE_TABLES) <= tables_in(engine, "main")
    assert not tables_in(engine, "queue")
    migrate.upgrade(engine)
    assert tables_in(engine, "queue") == set(sqlite_writer.QUEUE_TABLES)
    with engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT nonce FROM queue.spent_tokens")) == "kept"
    assert migrate.differences(engine) == []


def test_inbox_ids_are_never_used_again(engine):
    """An inbox receipt names its item by id (leadvault.inbox): 0026 gives the inbox
    AUTOINCREMENT, keeping the queued rows, and takes it back on downgrade."""
    item = sa.text(
        "INSERT INTO inbox (kind, received_at, payload, payload_owner, payload_key,"
        " payload_key_version, status, attempts, next_attempt_at)"
        " VALUES ('k', :t, x'00', 'o', x'00', 1, 'pending', 0, :t)"
    )
    now = dt.datetime(2030, 1, 1)

    def add_and_delete_the_last() -> int:
        with engine.begin() as connection:
            connection.execute(item, {"t": now})
            last = connection.scalar(sa.text("SELECT max(id) FROM inbox"))
            connection.execute(sa.text("DELETE FROM inbox WHERE id = :id"), {"id": last})
        return last

    def create_sql() -> str:
        with engine.connect() as connection:
            return connection.scalar(
                sa.text("SELECT sql FROM queue.sqlite_master WHERE name = 'inbox'")
            )

    with engine.begin() as connection:
        connection.execute(item, {"t": now})
    migrate.downgrade(engine, "0025")
    assert "AUTOINCREMENT" not in create_sql()
    assert add_and_delete_the_last() == add_and_delete_the_last()  # the same id twice
    migrate.upgrade(engine)
    assert "AUTOINCREMENT" in create_sql()
    first = add_and_delete_the_last()
    assert add_and_delete_the_last() == first + 1
    with engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT count(*) FROM inbox")) == 1  # kept
    assert migrate.differences(engine) == []


def test_a_submission_commits_while_the_main_file_is_being_written(engine):
    """A worker's batch holds the main file's write lock; a submission's write (the
    queue file's lock only, as capture.views._store takes it) goes through meanwhile,
    while a write that needs both files' locks waits until the batch commits."""
    factory = sessionmaker(bind=engine)
    holding = threading.Event()
    release = threading.Event()

    def batch() -> None:
        with db.unit_of_work(factory) as session:
            sqlite_writer.writes(session, sqlite_writer.MAIN)
            session.execute(sa.text("UPDATE purposes SET marketing = marketing"))
            holding.set()
            release.wait(10)

    worker = threading.Thread(target=batch)
    worker.start()
    try:
        assert holding.wait(10)
        spend = SPEND
        until = dt.datetime(2030, 1, 1)
        submitted = threading.Event()
        both = threading.Event()

        def submit() -> None:
            with db.short_write(factory, files=sqlite_writer.QUEUE) as connection:
                connection.execute(spend, {"n": "during", "t": until})
            submitted.set()

        def write_both() -> None:
            with db.short_write(factory) as connection:
                connection.execute(spend, {"n": "after", "t": until})
            both.set()

        threads = [threading.Thread(target=submit), threading.Thread(target=write_both)]
        for thread in threads:
            thread.start()
        assert submitted.wait(10), "the submission waited for the main file's lock"
        assert not both.wait(0.5), "a write to both files did not wait for the batch"
    finally:
        release.set()
        worker.join(10)
    for thread in threads:
        thread.join(10)
    assert both.is_set()
    with engine.connect() as connection:
        nonces = connection.scalars(sa.text("SELECT nonce FROM spent_tokens ORDER BY nonce"))
        assert list(nonces) == ["after", "during"]


def test_the_workers_checkpoints_run_apart(engine, tmp_path):
    sqlite_writer.checkpoint_apart(engine)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    with engine.begin() as connection:
        for n in range(200):
            connection.execute(
                SPEND,
                {"n": f"n{n}", "t": dt.datetime(2030, 1, 1)},
            )

    def in_the_file_itself() -> int:
        # immutable: the file as it is on disk, the WAL not read.
        uri = f"file:{tmp_path / 'leadvault-queue.db'}?immutable=1"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as connection:
            return connection.execute("SELECT count(*) FROM spent_tokens").fetchone()[0]

    assert in_the_file_itself() == 0
    sqlite_writer.checkpoint(engine)
    assert in_the_file_itself() == 200


RECEIPT = sa.text("INSERT INTO inbox_receipts (item_id) VALUES (:id)")


def rows_in(path: Path, sql: str) -> list[tuple]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def test_a_backup_copies_both_files_as_they_were_when_it_began(engine, tmp_path, monkeypatch):
    """One read transaction: rows committed to either file while the copy runs are in
    neither copy, so the pair is one the running instance had."""
    until = dt.datetime(2030, 1, 1)
    with engine.begin() as connection:
        connection.execute(SPEND, {"n": "before", "t": until})
        connection.execute(RECEIPT, {"id": 1})
    monkeypatch.setattr(sqlite_backup, "PAGES_PER_STEP", 1)
    steps: list[tuple[str, int, int]] = []

    def progress(name: str, done: int, total: int) -> None:
        if not steps:  # the queue file's copy has begun: both files change now
            with db.short_write(sessionmaker(bind=engine), files=sqlite_writer.QUEUE) as c:
                c.execute(SPEND, {"n": "during", "t": until})
            with engine.begin() as connection:
                connection.execute(RECEIPT, {"id": 2})
        steps.append((name, done, total))

    target = tmp_path / "backup"
    copied = sqlite_backup.backup(engine, target, progress)
    assert copied == [target / "leadvault-queue.db", target / "leadvault.db"]
    assert steps[0][0] == "leadvault-queue.db"
    assert steps[-1][0] == "leadvault.db" and steps[-1][1] == steps[-1][2]  # told to the end
    assert rows_in(copied[0], "SELECT nonce FROM spent_tokens") == [("before",)]
    assert rows_in(copied[1], "SELECT item_id FROM inbox_receipts") == [(1,)]
    for path in copied:
        assert path.stat().st_mode & 0o777 == 0o600
    # The copies are an instance: opened as one, at the newest revision.
    restored = create_engine(f"sqlite:///{copied[1]}")
    try:
        assert migrate.differences(restored) == []
        with restored.connect() as connection:
            assert connection.scalar(sa.text("SELECT count(*) FROM spent_tokens")) == 1
    finally:
        restored.dispose()
    with engine.connect() as connection:  # and the live files have both
        assert connection.scalar(sa.text("SELECT count(*) FROM spent_tokens")) == 2


def test_a_backup_opens_its_snapshots_when_no_batch_is_writing(engine, tmp_path):
    """A worker's batch writing the main file: the backup waits for its commit before it
    opens its snapshots (else it could copy the queue file before the batch's DELETE and
    the main file after a later batch dropped that item's receipt)."""
    factory = sessionmaker(bind=engine)
    holding = threading.Event()
    release = threading.Event()
    copied = threading.Event()

    def batch() -> None:
        with db.unit_of_work(factory) as session:
            sqlite_writer.writes(session, sqlite_writer.MAIN)
            session.execute(RECEIPT, {"id": 7})
            holding.set()
            release.wait(10)

    def copy() -> None:
        sqlite_backup.backup(engine, tmp_path / "backup")
        copied.set()

    threads = [threading.Thread(target=batch), threading.Thread(target=copy)]
    threads[0].start()
    try:
        assert holding.wait(10)
        threads[1].start()
        assert not copied.wait(0.5), "the backup did not wait for the batch"
    finally:
        release.set()
        for thread in threads:
            thread.join(10)
    assert copied.is_set()
    assert rows_in(tmp_path / "backup" / "leadvault.db", "SELECT item_id FROM inbox_receipts") == [
        (7,)
    ]


def test_a_backup_never_replaces_a_file(engine, tmp_path):
    target = tmp_path / "backup"
    target.mkdir()
    (target / "leadvault.db").write_bytes(b"kept")
    with pytest.raises(sqlite_backup.BackupRefused, match=r"leadvault\.db exists"):
        sqlite_backup.backup(engine, target)
    assert (target / "leadvault.db").read_bytes() == b"kept"
    assert not (target / "leadvault-queue.db").exists()


def test_a_backup_of_postgresql_or_memory_is_refused_with_a_reason(tmp_path):
    postgresql = sa.create_engine("postgresql+psycopg://leadvault@127.0.0.1/none")
    with pytest.raises(sqlite_backup.BackupRefused, match="pg_dump"):
        sqlite_backup.backup(postgresql, tmp_path / "backup")
    with pytest.raises(sqlite_backup.BackupRefused, match="in-memory"):
        sqlite_backup.backup(sa.create_engine("sqlite://"), tmp_path / "backup")
    assert not (tmp_path / "backup").exists()


def test_leadvault_db_backup_writes_the_pair_and_refuses_to_overwrite(tmp_path):
    def leadvault(*args: str) -> subprocess.CompletedProcess[str]:
        return leadvault_in(tmp_path, *args)

    assert leadvault("db", "upgrade").returncode == 0
    first = leadvault("db", "backup", "copies")
    assert first.returncode == 0, first.stderr
    copies = tmp_path / "copies"
    assert f"Wrote {copies / 'leadvault-queue.db'}" in first.stdout
    assert f"Wrote {copies / 'leadvault.db'}" in first.stdout
    again = leadvault("db", "backup", "copies")
    assert again.returncode == 1
    assert (
        again.stderr.strip()
        == f"Error: {copies / 'leadvault-queue.db'} exists: choose an empty folder"
    )
    assert "Traceback" not in again.stderr


def test_an_interrupted_backup_leaves_no_file(engine, tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_backup, "PAGES_PER_STEP", 1)

    def progress(name: str, done: int, total: int) -> None:
        if name == "leadvault.db":
            raise KeyboardInterrupt  # Ctrl-C during the second file's copy

    with pytest.raises(KeyboardInterrupt):
        sqlite_backup.backup(engine, tmp_path / "backup", progress)
    assert list((tmp_path / "backup").iterdir()) == []
    assert len(sqlite_backup.backup(engine, tmp_path / "backup")) == 2  # and again


def test_a_backup_that_cannot_write_says_why_and_leaves_nothing(engine, tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(sqlite_backup.BackupRefused, match="cannot make the folder"):
        sqlite_backup.backup(engine, tmp_path / "a-file" / "backup")

    def full(name: str, done: int, total: int) -> None:
        if name == "leadvault.db":
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(sqlite_backup, "PAGES_PER_STEP", 1)
    with pytest.raises(sqlite_backup.BackupRefused, match="No space left on device"):
        sqlite_backup.backup(engine, tmp_path / "backup", full)
    assert list((tmp_path / "backup").iterdir()) == []
