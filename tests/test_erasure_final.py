"""Erasure is final on PostgreSQL too (issue 10.10).

PostgreSQL keeps a deleted row in the table's pages until VACUUM reuses the
space (and in WAL and backups for longer). The dead row of an erased lead
still holds its wrapped data key, which the key ring of the day opens. The
worker's scheduled rotation (``leadvault.keys.rotation_job``) makes a new
master key every LEADVAULT_KEY_ROTATION_DAYS, re-wraps the live keys and
retires the version before last; the test reads the dead tuples with
``pageinspect`` before and after and proves they no longer decrypt.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from leadvault import clock, keys, leads
from leadvault.app import runtime
from leadvault.crypto import DecryptionError, Keyring, Vault, WrappedKey
from tests import factories
from tests.conftest import _smtp_config, unique_email


@dataclasses.dataclass
class Tuple:
    dead: bool
    wrapped_key: bytes
    key_version: int
    email: bytes


def _varlena(raw: bytes) -> bytes:
    """The value of an inline varlena attribute as pageinspect returns it (with header)."""
    if raw[0] & 0x01:  # one-byte header: length (header included) in the upper 7 bits
        assert raw[0] != 0x01, "a TOAST pointer: not expected for these small values"
        return raw[1 : raw[0] >> 1]
    length = int.from_bytes(raw[:4], "little") >> 2
    return raw[4:length]


def lead_tuples(engine: sa.Engine, lead_id: uuid.UUID) -> list[Tuple]:
    """Every row version of ``lead_id`` in the pages of ``leads``, read by pageinspect."""
    with engine.connect() as connection:
        # pageinspect lives in public; its SQL wrappers call each other unqualified.
        connection.execute(
            sa.text(
                "SELECT set_config('search_path', "
                "current_setting('search_path') || ', public', true)"
            )
        )
        columns = list(
            connection.scalars(
                sa.text(
                    "SELECT attname FROM pg_attribute WHERE attrelid = 'leads'::regclass "
                    "AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
                )
            )
        )
        pages = connection.scalar(
            sa.text("SELECT pg_relation_size('leads') / current_setting('block_size')::int")
        )
        found = []
        for page in range(pages or 0):
            rows = connection.execute(
                sa.text(
                    "SELECT t_xmax, t_attrs FROM heap_page_item_attrs("
                    "get_raw_page('leads', :page), 'leads'::regclass, false) "
                    "WHERE t_attrs IS NOT NULL"
                ),
                {"page": page},
            )
            for xmax, attrs in rows:
                values = dict(zip(columns, attrs, strict=True))
                if uuid.UUID(bytes=bytes(values["id"])) != lead_id:
                    continue
                found.append(
                    Tuple(
                        dead=int(xmax) != 0,
                        wrapped_key=_varlena(bytes(values["wrapped_key"])),
                        key_version=int.from_bytes(bytes(values["key_version"]), "little"),
                        email=_varlena(bytes(values["email"])),
                    )
                )
        return found


def _run_rotation(app: Any) -> list[dict[str, int]]:
    """The worker's job, run until it has nothing left to do."""
    runs = []
    while True:
        with factories.uow(app) as s:
            done = keys.rotation_job(s)
        runs.append(done)
        if not any(done.values()):
            return runs


@pytest.mark.committing
def test_erased_leads_dead_tuples_stop_decrypting_after_rotation(
    make_app, smtp_server, tmp_path, backend
):
    if backend != "postgresql":
        pytest.skip("SQLite zeroes deleted pages itself (secure_delete, WAL checkpoint)")
    keyring_file = tmp_path / "keyring.json"
    Keyring.load_or_create(keyring_file)
    app = make_app(smtp_url=_smtp_config(smtp_server.port), keyring=str(keyring_file))
    engine = runtime(app).engine
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pageinspect SCHEMA public"))
        # No VACUUM meanwhile: the dead row stays in its page, as it may for long.
        connection.execute(sa.text("ALTER TABLE leads SET (autovacuum_enabled = false)"))
    # Nor pruning: PostgreSQL may drop a dead row from its page whenever a later update
    # (the rotation's re-wrap) finds it dead to every snapshot. An older snapshot held
    # open keeps it, as any long transaction on a busy server would.
    holder = engine.connect().execution_options(isolation_level="REPEATABLE READ")
    held = holder.begin()
    holder.execute(sa.text("SELECT 1"))
    try:
        email, kept_email = unique_email("erased"), unique_email("kept")
        erased_id = factories.lead(app, email, profile={"first_name": "Ada"})
        kept_id = factories.lead(app, kept_email)
        with factories.uow(app) as s:
            leads.erase(s, leads.get(s, erased_id), actor="subject", reason="request")

        # Before: the dead row is in the page, and today's key ring opens it.
        before = lead_tuples(engine, erased_id)
        assert before and all(t.dead for t in before)
        today = Vault(Keyring.load(keyring_file))
        for t in before:
            key = today.unwrap(WrappedKey(t.wrapped_key, t.key_version), erased_id)
            assert key.decrypt("email", t.email) == email  # readable: erasure not final yet
        erased_version = before[0].key_version

        # Two rotation periods later (the worker's job, as it runs every minute).
        start = clock.now()
        clock.freeze(start + dt.timedelta(days=29))
        assert _run_rotation(app)[0]["rotated_to"] == 0  # not due yet
        clock.freeze(start + dt.timedelta(days=31))
        first = _run_rotation(app)
        assert first[0]["rotated_to"] == erased_version + 1 and first[0]["rewrapped"] >= 1
        assert sum(r["retired"] for r in first) == 0  # the version before last stays
        clock.freeze(start + dt.timedelta(days=62))
        second = _run_rotation(app)
        assert second[0]["rotated_to"] == erased_version + 2
        assert sum(r["retired"] for r in second) == 1

        # After: the dead row is still in the page, but no key ring opens it any more.
        after = lead_tuples(engine, erased_id)
        assert [t.wrapped_key for t in after] == [t.wrapped_key for t in before]
        ring = Keyring.load(keyring_file)
        assert erased_version not in ring.master_keys
        assert sorted(ring.master_keys) == [erased_version + 1, erased_version + 2]
        for t in after:
            with pytest.raises(DecryptionError):
                Vault(ring).unwrap(WrappedKey(t.wrapped_key, t.key_version), erased_id)
        # The live lead was re-wrapped and reads as before, in this process too.
        with factories.uow(app) as s:
            kept = leads.get(s, kept_id)
            assert kept.key_version == erased_version + 2
            assert leads.email_of(s, kept) == kept_email
    finally:
        held.rollback()
        holder.close()
        clock.freeze(None)
        with engine.begin() as connection:
            connection.execute(sa.text("ALTER TABLE leads RESET (autovacuum_enabled)"))


def test_rotation_is_off_at_zero_days_and_counts_from_an_old_key_ring(make_app, tmp_path):
    keyring_file = tmp_path / "keyring.json"
    ring = Keyring.generate()
    ring.rotated_at = None  # written before the time was recorded
    ring.save(keyring_file)
    app = make_app(keyring=str(keyring_file), key_rotation_days=0)
    with factories.uow(app) as s:
        assert keys.rotation_job(s) == {"rotated_to": 0, "rewrapped": 0, "retired": 0}
    assert Keyring.load(keyring_file).rotated_at is None
    app = make_app(keyring=str(keyring_file))
    with factories.uow(app) as s:
        keys.rotation_job(s)
    # An older key ring: the first period starts now, nothing rotates yet.
    assert Keyring.load(keyring_file).rotated_at is not None
    assert sorted(Keyring.load(keyring_file).master_keys) == [1]


def test_every_sealed_table_is_rewrapped_by_rotation(app):
    """A table holding data keys of its own (``payload_key_version``) that rotation does
    not know would become unreadable when its master key version is retired."""
    from leadvault.model_base import Base

    registered = {model.__table__.name for model in keys._STANDALONE}
    sealed = {
        table.name for table in Base.metadata.sorted_tables if "payload_key_version" in table.c
    }
    assert sealed - registered == set(), "call leadvault.keys.register_sealed_table(Model)"
