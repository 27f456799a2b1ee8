"""The audit trail (issue 11.3): append-only, hash-chained, pseudonymous, verified by
``leadvault audit verify``, which names the entry that was changed."""

from __future__ import annotations

import types

import sqlalchemy as sa
from click.testing import CliRunner

from leadvault import audit, chain
from leadvault.app import runtime
from leadvault.cli import cli
from leadvault.models import AuditEntry, AuditHead
from tests import factories
from tests.factories import uow


def _record(app, n: int = 3) -> list[int]:
    ids = []
    with uow(app) as s:
        for i in range(n):
            entry = audit.record(
                s,
                actor="user:1",
                action=audit.Action.LEAD_REVEALED,
                object_type="lead",
                object_id=f"lead-{i}",
                detail={"fields": ["email", "first_name"], "n": i},
                ip="198.51.100.77",
            )
            ids.append(entry.id)
    return ids


def test_record_chains_and_truncates_the_ip(app):
    ids = _record(app)
    with uow(app) as s:
        rows = s.scalars(sa.select(AuditEntry).order_by(AuditEntry.id)).all()
        assert [r.id for r in rows] == ids
        assert rows[0].prev_hash == chain.GENESIS
        assert rows[1].prev_hash == rows[0].entry_hash
        assert {r.ip_prefix for r in rows} == {"198.51.100.0"}
        assert audit.detail_of(rows[2]) == {"fields": ["email", "first_name"], "n": 2}
        head = s.get(AuditHead, chain.HEAD_ID)
        assert (head.last_id, head.last_hash) == (rows[-1].id, rows[-1].entry_hash)
        assert audit.verify(s).ok
        assert audit.verify(s).checked == 3


def test_verify_names_the_entry_after_one_byte_changes(app):
    ids = _record(app, 4)
    runner = CliRunner()
    result = runner.invoke(cli, ["audit", "verify"], obj=app)
    assert result.exit_code == 0, result.output
    assert "Audit trail intact: 4 entries verified." in result.output

    with uow(app) as s:  # one byte of the third entry's detail
        row = s.get(AuditEntry, ids[2])
        row.detail = row.detail.replace('"n":2', '"n":3')
    result = runner.invoke(cli, ["audit", "verify"], obj=app)
    assert result.exit_code == 1
    assert f"Audit trail BROKEN at entry {ids[2]}: its content does not match its hash" in (
        result.output
    )
    assert "(2 entries before it verified)" in result.output


def test_verify_notices_removed_and_forged_entries(app):
    ids = _record(app, 3)
    with uow(app) as s:
        s.execute(sa.delete(AuditEntry).where(AuditEntry.id == ids[1]))
    with uow(app) as s:
        verdict = audit.verify(s)
        assert (verdict.broken_id, verdict.reason) == (
            ids[2],
            "does not follow its predecessor (edited or removed)",
        )


def test_verify_notices_the_newest_entry_removed(app):
    ids = _record(app, 2)
    with uow(app) as s:
        s.execute(sa.delete(AuditEntry).where(AuditEntry.id == ids[1]))
    with uow(app) as s:
        verdict = audit.verify(s)
        assert not verdict.ok
        assert verdict.reason == "the newest entries were removed (head does not match)"


def test_a_rolled_back_change_leaves_no_entry(app):
    try:
        with uow(app) as s:
            audit.record(s, actor="user:1", action="lead.revealed", object_type="lead")
            raise RuntimeError("the change failed")
    except RuntimeError:
        pass
    with uow(app) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) == 0
        assert audit.verify(s).ok


def test_personal_data_is_refused(app):
    import pytest

    with uow(app) as s:
        for kwargs in (
            {"actor": "ada@example.org"},
            {"object_id": "ada@example.org"},
            {"detail": {"to": "ada@example.org"}},
            {"detail": {"nested": {"a": 1}}},
            {"detail": {"Bad Key": 1}},
            {"action": "Not An Action"},
            {"detail": {"long": "x" * 3000}},
        ):
            call = {"actor": "user:1", "action": "lead.revealed", "object_type": "lead"}
            with pytest.raises(audit.AuditError):
                audit.record(s, **{**call, **kwargs})


def test_erasing_a_lead_adds_exactly_one_entry(app):
    lead_id = factories.lead(app, profile={"first_name": "Ada"})
    with uow(app) as s:
        before = s.scalar(sa.select(sa.func.count()).select_from(AuditEntry))
    from consent import rights
    from leadvault.models import Lead

    with uow(app) as s:
        rights.erase(s, s.get(Lead, lead_id), actor="user:5", reason="request", ip="2001:db8::1")
    with uow(app) as s:
        rows = s.scalars(sa.select(AuditEntry).order_by(AuditEntry.id)).all()
        assert len(rows) == before + 1
        last = rows[-1]
        assert (last.actor, last.action, last.object_type, last.object_id) == (
            "user:5",
            "lead.erased",
            "lead",
            str(lead_id),
        )
        assert last.ip_prefix == "2001:db8::"
        assert audit.verify(s).ok


def test_cli_erase_is_audited_as_the_cli_user(app):
    email = factories.unique_email()
    factories.lead(app, email)
    result = CliRunner().invoke(cli, ["leads", "erase", "--email", email, "--yes"], obj=app)
    assert result.exit_code == 0, result.output
    with uow(app) as s:
        (entry,) = audit.entries(s, audit.Filters(action="lead.erased"))
        assert entry.actor == audit.cli_actor()
        assert email not in entry.detail and email not in (entry.object_id or "")
    listed = CliRunner().invoke(cli, ["audit", "list", "--action", "lead.erased"], obj=app)
    assert listed.exit_code == 0
    assert f"#{entry.id} " in listed.output and "lead.erased" in listed.output


def test_entries_pages_newest_first_and_filters(app):
    ids = _record(app, 5)
    with uow(app) as s:
        page = audit.entries(s, limit=2)
        assert [e.id for e in page] == [ids[4], ids[3]]
        rest = audit.entries(s, before=page[-1].id, limit=200)
        assert [e.id for e in rest] == [ids[2], ids[1], ids[0]]
        assert [e.id for e in audit.entries(s, audit.Filters(object_id="lead-1"))] == [ids[1]]
        assert audit.entries(s, audit.Filters(actor="user:2")) == []


def test_consent_ledger_uses_the_same_chain(app):
    """One piece of chaining code: the ledger's hashes come from leadvault.chain."""
    from consent import ledger
    from consent.models import LedgerEntry

    factories.lead(app)
    with uow(app) as s:
        rows = s.scalars(sa.select(LedgerEntry).order_by(LedgerEntry.id)).all()
        assert rows
        assert all(ledger.CHAIN.hash_of(r) == r.entry_hash for r in rows)
        assert ledger.verify(s).ok
        first = rows[0].id
        s.execute(sa.update(LedgerEntry).where(LedgerEntry.id == first).values(detail="x"))
        assert ledger.verify(s).broken_id == first
        s.rollback()


def test_a_cut_entry_hashes_as_its_whole_fields_do():
    """Chain.cut (a worker batch's ledger entries, made in its snapshot and linked under the
    write lock) gives hash_of's digest: keys on either side of prev_hash or none, escapes."""
    cases: list[dict[str, object]] = [
        {},
        {"a": 1},
        {"z": None},
        {
            "created_at": "2026-12-05T04:00:00.000000+00:00",
            "detail": 'ä"\\\n',
            "event": "granted",
            "purpose": None,
            "text_id": 3,
            "user_agent_hash": "ab",
        },
        {"prev": 1, "prev_hasg": 2, "prev_hash_": 3, "prev_hashes": [4], "Z": 5.5, "é": "ü"},
    ]
    for fields in cases:
        linked = chain.Chain(
            entry_model=object, head_model=object, canonical=lambda _e, f=fields: f
        )
        for previous in (chain.GENESIS, "ab" * 32, 'q"\u00e9'):
            entry = types.SimpleNamespace(prev_hash=previous)
            assert linked.cut(entry).digest(previous) == linked.hash_of(entry)


def test_audit_head_is_seeded_once(app):
    with runtime(app).session_factory() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(AuditHead)) == 1
