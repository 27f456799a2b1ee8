"""The instance folder (database, queue file, WAL, key ring, assets, mail files) is private.

Everything Leadvault creates is readable by its own user only: the processes
run with umask 077 (files 0600, folders 0700; SQLite gives its WAL and shared
memory files the mode of the database file), and at start an existing instance
folder, and a SQLite database kept elsewhere, is tightened to those modes, so
a folder made by an older version or by hand does not stay readable to others.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from leadvault import sqlite_writer
from leadvault.settings import Settings

log = logging.getLogger("leadvault.instance")

PRIVATE_UMASK = 0o077
FILE_MODE = 0o600
FOLDER_MODE = 0o700
# SQLite's companions of a database file.
_SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal", ".writer-lock")


def private_umask() -> None:
    """From now on this process creates files 0600 and folders 0700."""
    os.umask(PRIVATE_UMASK)


def _tighten_one(path: Path, mode: int) -> bool:
    try:
        current = path.lstat()
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(current.st_mode):
        return False  # never follow a link out of the folder
    if stat.S_IMODE(current.st_mode) & ~mode:
        path.chmod(stat.S_IMODE(current.st_mode) & mode)
        return True
    return False


def tighten(folder: Path) -> int:
    """Take group and other permissions from ``folder`` and everything in it
    (links are left alone, not followed); returns how many entries changed."""
    if not folder.is_dir():
        return 0
    changed = int(_tighten_one(folder, FOLDER_MODE))
    for root, folders, files in os.walk(folder):
        base = Path(root)
        for name in folders:
            changed += _tighten_one(base / name, FOLDER_MODE)
        for name in files:
            changed += _tighten_one(base / name, FILE_MODE)
    return changed


def secure(settings: Settings) -> int:
    """At start: umask 077, and the instance folder and a SQLite database (with its
    WAL) made private; logs how many entries were tightened."""
    private_umask()
    changed = tighten(settings.instance)
    database = _sqlite_file(settings.database_url)
    if database is not None and settings.instance not in database.parents:
        queue = sqlite_writer.queue_path(str(database))
        for file in (database, Path(queue)) if queue is not None else (database,):
            for suffix in _SQLITE_SUFFIXES:
                changed += _tighten_one(file.with_name(file.name + suffix), FILE_MODE)
    if changed:
        log.warning("tightened %s entries of the instance folder to owner-only access", changed)
    return changed


def _sqlite_file(url: str) -> Path | None:
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url == prefix or ":memory:" in url:
        return None
    return Path(url[len(prefix) :].split("?", 1)[0]).resolve()
