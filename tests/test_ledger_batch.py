"""A worker's batch links its ledger entries after the newest one, however the session
appended before and after it (the batch moves the head by Core statements)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from consent import ledger
from consent.models import LedgerEntry, LedgerEvent, LedgerHead
from leadvault import batch
from leadvault.app import runtime
from leadvault.chain import HEAD_ID
from leadvault.db import unit_of_work


def test_appends_around_a_batch_in_one_transaction_keep_one_chain(app: Any) -> None:
    with app.app_context(), unit_of_work(runtime(app).session_factory) as session:
        # An append outside the batch loads the head into the session (held here, so the
        # session's weak identity map keeps it).
        ledger.append(session, event=LedgerEvent.REQUESTED, subject="before")
        loaded = session.get(LedgerHead, HEAD_ID)
        assert loaded is not None
        batch.begin(session)
        try:
            for n in range(3):
                assert ledger.append(session, event=LedgerEvent.REQUESTED, subject=f"b{n}") is None
            batch.finish(session)
        finally:
            batch.end(session)
        # The head the session holds is the one the batch moved, and the next entry
        # follows the batch's.
        head = session.get(LedgerHead, HEAD_ID)
        assert head is loaded
        held = (head.last_id, head.last_hash)
        stored = session.execute(
            sa.select(LedgerHead.__table__).where(LedgerHead.__table__.c.id == HEAD_ID)
        ).one()
        assert held == (stored.last_id, stored.last_hash)
        after = ledger.append(session, event=LedgerEvent.REQUESTED, subject="after")
        assert after is not None
        entries = session.query(LedgerEntry).order_by(LedgerEntry.id).all()
        assert [e.subject for e in entries][-5:] == ["before", "b0", "b1", "b2", "after"]
        assert after.prev_hash == entries[-2].entry_hash
        head = session.get(LedgerHead, HEAD_ID)
        assert (head.last_id, head.last_hash) == (after.id, after.entry_hash)
        assert ledger.verify(session).ok
    with app.app_context(), runtime(app).session_factory() as session:
        assert ledger.verify(session).ok


def test_a_batchs_entries_hash_as_entries_appended_one_by_one(app: Any) -> None:
    with app.app_context(), unit_of_work(runtime(app).session_factory) as session:
        batch.begin(session)
        try:
            ledger.append(
                session, event=LedgerEvent.REQUESTED, subject="s", purpose="newsletter", detail="ü"
            )
            batch.finish(session)
        finally:
            batch.end(session)
        entry = session.query(LedgerEntry).order_by(LedgerEntry.id.desc()).first()
        assert entry is not None and entry.detail == "ü"
        assert ledger.entry_hash(entry) == entry.entry_hash
