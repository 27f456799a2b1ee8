"""``leadvault db backup``: a copy of a SQLite instance's two files while it runs.

The main file and the queue file (``sqlite_writer``) are copied from one connection
inside one read transaction, whose snapshots of the two files are opened while no
transaction can write the main file (its writer queue held for that moment only). So
the pair is one the running instance could have had: a worker's batch is either in
both copies (its leads and receipts in the main file, its items gone from the queue
file), in neither, or has its leads and receipts copied with its items still queued,
which the receipts keep from being stored again (``leadvault.inbox``). The copies use
SQLite's online backup, page by page, beside the running writers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import Engine

from leadvault import sqlite_writer

# Pages copied a step: progress is told between steps.
PAGES_PER_STEP = 1024

# Told how far a file's copy is: (file name, pages copied, pages in all).
Progress = Callable[[str, int, int], None]


class BackupRefused(Exception):
    """Nothing was copied (or what was is gone again): the message says why."""


def targets(engine: Engine, directory: Path) -> list[tuple[str, Path]]:
    """(schema, file to write) in the order they are copied: the queue file first."""
    database = engine.url.database
    if engine.dialect.name != "sqlite":
        raise BackupRefused("this is PostgreSQL: back it up with pg_dump")
    queue = sqlite_writer.queue_path(database)
    if not database or queue is None:
        raise BackupRefused("an in-memory database has no file to back up")
    return [
        (sqlite_writer.QUEUE_SCHEMA, directory / Path(queue).name),
        ("main", directory / Path(database).name),
    ]


def backup(engine: Engine, directory: Path, progress: Progress | None = None) -> list[Path]:
    """Copy the instance's files into ``directory`` (made if missing, mode 0700); the
    copies are made with mode 0600 and never replace a file. Returns them. A copy that
    fails or is interrupted leaves no file behind (half a pair is no backup)."""
    copies = targets(engine, directory)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupRefused(f"cannot make the folder {directory}: {exc.strerror}") from None
    for _schema, target in copies:
        if target.exists():
            raise BackupRefused(f"{target} exists: choose an empty folder")
    raw = engine.raw_connection()
    source: sqlite3.Connection = raw.driver_connection  # type: ignore[assignment]
    try:
        with sqlite_writer.main_file_held(engine):
            source.execute("BEGIN")
            for schema, _target in copies:  # a read opens the file's snapshot
                source.execute(f"SELECT count(*) FROM {schema}.sqlite_master").fetchall()  # noqa: S608
        written: list[Path] = []
        try:
            for schema, target in copies:
                written.append(target)
                _copy(source, schema, target, progress)
        except BaseException as exc:
            for path in written:
                path.unlink(missing_ok=True)
            if isinstance(exc, OSError | sqlite3.Error):  # a full disk, a folder not ours
                raise BackupRefused(f"copying to {written[-1]} failed: {exc}") from None
            raise
    finally:
        if source.in_transaction:
            source.execute("ROLLBACK")
        raw.close()
    return [target for _schema, target in copies]


def _copy(source: sqlite3.Connection, schema: str, target: Path, progress: Progress | None) -> None:
    target.touch(mode=0o600, exist_ok=False)
    copy = sqlite3.connect(target)
    try:

        def told(_status: int, remaining: int, total: int) -> None:
            if progress is not None:
                progress(target.name, total - remaining, total)

        # Inside the read transaction begun above: its snapshot, not the file's latest.
        source.backup(copy, name=schema, pages=PAGES_PER_STEP, progress=told)
    finally:
        copy.close()
