"""Master key rotation: re-wrap data keys, never touch field ciphertexts.

Scheduled rotation (the worker's ``key-rotation`` job) is what makes erasure
final where the database keeps old row versions. Erasing a lead deletes its
wrapped data key, but PostgreSQL leaves the deleted row in the table's pages
until VACUUM reuses them (and in WAL, replicas and backups for longer); that
dead row still opens with the master key that wrapped it. So every
LEADVAULT_KEY_ROTATION_DAYS the job makes a new master key version, re-wraps
every live data key under it, and retires (deletes from the key ring) the
version before last. A data key erased while version V was active is then
unreadable once V is retired: at most two rotation periods after the erasure
(plus the job's interval), wherever a copy of the row survives, provided no
copy of the key ring of that time survives either.

The version before last is kept for one period: a process that has not yet
reloaded the key ring may still wrap a new key under it, and the next run
re-wraps that key before the version goes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from leadvault import clock
from leadvault.crypto import Keyring, KeyringError, WrappedKey
from leadvault.db import settings_of, vault_of
from leadvault.models import InboxItem, Lead, OutboxMessage

log = logging.getLogger("leadvault.keys")

# How often the worker runs the rotation job, and how many data keys one run
# re-wraps (each run is one transaction).
ROTATION_JOB_SECONDS = 60.0
REWRAP_PER_RUN = 2000

# Tables whose rows carry a data key of their own (same column names in each:
# payload_owner, payload_key, payload_key_version). Packages add theirs.
_STANDALONE: list[Any] = [OutboxMessage, InboxItem]


def register_sealed_table(model: Any) -> None:
    if model not in _STANDALONE:
        _STANDALONE.append(model)


def count_using(session: Session, version: int) -> int:
    """Data keys (leads, lead-less outbox rows, inbox items) still wrapped by ``version``."""
    total = session.scalar(sa.select(sa.func.count()).where(Lead.key_version == version)) or 0
    for model in _STANDALONE:
        total += (
            session.scalar(sa.select(sa.func.count()).where(model.payload_key_version == version))
            or 0
        )
    return total


def count_stale(session: Session, active: int) -> int:
    total = session.scalar(sa.select(sa.func.count()).where(Lead.key_version != active)) or 0
    for model in _STANDALONE:
        total += (
            session.scalar(
                sa.select(sa.func.count()).where(
                    model.payload_key_version.is_not(None), model.payload_key_version != active
                )
            )
            or 0
        )
    return total


def rewrap_batch(session: Session, *, limit: int = 500) -> int:
    """Re-wrap up to ``limit`` data keys under the active master key; returns how many."""
    vault = vault_of(session)
    active = vault.keyring.active_version
    done = 0
    for lead in session.scalars(
        sa.select(Lead).where(Lead.key_version != active).limit(limit).with_for_update()
    ):
        new = vault.rewrap(WrappedKey(lead.wrapped_key, lead.key_version), lead.id)
        lead.wrapped_key, lead.key_version = new.wrapped, new.version
        done += 1
    for model in _STANDALONE:
        if done >= limit:
            break
        rows = session.scalars(
            sa.select(model)
            .where(model.payload_key_version.is_not(None), model.payload_key_version != active)
            .limit(limit - done)
            .with_for_update()
        )
        for row in rows:
            assert row.payload_key is not None and row.payload_key_version is not None
            new = vault.rewrap(
                WrappedKey(row.payload_key, row.payload_key_version), row.payload_owner
            )
            row.payload_key, row.payload_key_version = new.wrapped, new.version
            done += 1
    session.flush()
    return done


@contextlib.contextmanager
def _rotation_lock(keyring: Keyring) -> Iterator[None]:
    """One rotating process at a time (workers on one host share the key ring file)."""
    assert keyring.path is not None
    lock_path = keyring.path.with_name(keyring.path.name + ".lock")
    with lock_path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def rotation_job(session: Session) -> dict[str, int]:
    """The worker's scheduled rotation (see the module docstring): rotate when the
    active master key is LEADVAULT_KEY_ROTATION_DAYS old, re-wrap up to
    REWRAP_PER_RUN stale data keys, retire unused versions older than the one
    before the active one. Returns what it did (for logs and tests)."""
    days = settings_of(session).key_rotation_days
    vault = vault_of(session)
    done = {"rotated_to": 0, "rewrapped": 0, "retired": 0}
    if days <= 0 or vault.keyring.path is None:
        return done  # rotation by hand (`leadvault keys rotate`), e.g. a read-only key ring
    with _rotation_lock(vault.keyring):
        vault.refresh(force=True)
        keyring = Keyring.load(vault.keyring.path)  # what the file says now, under the lock
        vault.keyring = keyring
        now = clock.now()
        if keyring.rotated_at is None:
            keyring.rotated_at = now  # an older key ring: the period starts today
            keyring.save()
        elif now - keyring.rotated_at >= dt.timedelta(days=days):
            done["rotated_to"] = keyring.add_master_version()
            keyring.save()  # before any key is wrapped by it
            log.info("master key rotated to version %s", done["rotated_to"])
        if len(keyring.master_keys) > 1:
            done["rewrapped"] = rewrap_batch(session, limit=REWRAP_PER_RUN)
            if done["rewrapped"] == 0:
                # Only once an earlier run's re-wraps are committed: retiring a version
                # that an uncommitted re-wrap still depends on would lose those keys.
                done["retired"] = _retire_old(session, keyring)
        vault.refresh(force=True)
    return done


def _retire_old(session: Session, keyring: Keyring) -> int:
    """Retire versions older than the one before the active one, once no key uses them."""
    keep = {keyring.active_version, keyring.active_version - 1}
    retired = 0
    for version in sorted(v for v in keyring.master_keys if v not in keep):
        if count_using(session, version):
            continue  # re-wrapped by the next runs first
        try:
            keyring.retire_master_version(version)
        except KeyringError:
            continue
        retired += 1
        log.info("master key version %s retired", version)
    if retired:
        keyring.save()
    return retired
