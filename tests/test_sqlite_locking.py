"""SQLite's write lock, as the engine takes it (BEGIN IMMEDIATE in a begin hook)."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from leadvault.engine import create_engine


def test_a_locked_database_raises_sqlalchemys_operational_error(tmp_path):
    # The web layer answers sqlalchemy's OperationalError with a 503 page; a raw
    # sqlite3 error from the hook would have become a 500.
    path = tmp_path / "locked.db"
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("PRAGMA journal_mode=WAL")
    blocker.execute("CREATE TABLE t (x)")
    blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            conn.connection.driver_connection.execute("PRAGMA busy_timeout=50")
            with pytest.raises(sa.exc.OperationalError, match="locked"):
                conn.begin()
        blocker.execute("ROLLBACK")
        with engine.begin() as conn:  # the queue was released: the next writer goes on
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    finally:
        blocker.close()
        engine.dispose()
