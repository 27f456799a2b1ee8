"""SQLite: what a worker's batch holds the one write lock for (issue 13.3)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from leadvault.app import runtime
from leadvault.models import InboxItem, Lead
from leadvault.sqlite_writer import in_snapshot
from leadvault.worker import Worker
from scoring import enrichment
from scoring.models import Event, LeadScore
from tests.conftest import make_form, unique_email
from tests.test_throughput import count, ledger_ok, submit


@pytest.fixture
def whole_batches(monkeypatch):
    from leadvault import inbox

    monkeypatch.setattr(inbox, "SQLITE_BATCH_SECONDS", 60.0)


@pytest.mark.committing
def test_a_sqlite_batch_scores_its_leads_before_it_takes_the_write_lock(
    make_app, backend, monkeypatch, whole_batches, caplog
):
    """Scoring the batch (rules, enrichment, sealing the events) runs in the batch's
    read snapshot, so requests do not wait for SQLite's write lock meanwhile; the
    stored result is the same, for new leads and a known one alike."""
    if backend != "sqlite":
        pytest.skip("PostgreSQL has no single write lock")
    app = make_app()
    form_id = make_form(app)
    known = unique_email("known")
    submit(app, form_id, [known])
    worker = Worker(app, batch_size=10)
    assert worker.process_inbox() == 1
    submit(app, form_id, [known, unique_email("new0"), unique_email("new1")])
    real = enrichment.run
    snapshot: list[bool] = []

    def watched(session: Any, *args: Any, **kwargs: Any) -> Any:
        snapshot.append(in_snapshot(session))
        return real(session, *args, **kwargs)

    monkeypatch.setattr(enrichment, "run", watched)
    assert worker.process_inbox() == 3
    worker.close()
    assert snapshot == [True, True, True], "scored while holding the write lock"
    assert count(app, Lead) == 3
    assert count(app, LeadScore) == 3
    assert count(app, InboxItem) == 0
    with runtime(app).session_factory() as s:
        assert s.scalar(sa.select(sa.func.count()).where(Event.type == "form_submitted")) == 4
        assert set(s.scalars(sa.select(LeadScore.first_form))) == {form_id}
    assert "goes again" not in caplog.text
    assert ledger_ok(app).ok
