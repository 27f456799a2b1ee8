"""SQLite: what the public endpoint writes lives in a file of its own (issue 13.3), so a
submission never waits for the write lock the worker holds while it stores leads."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from leadvault import db, migrate, sqlite_writer
from leadvault.engine import create_engine

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
