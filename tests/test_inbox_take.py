"""Which inbox items a worker's batch takes: the first due ones in id order."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from leadvault import clock, inbox, inbox_queueing
from leadvault.app import runtime
from leadvault.db import dialect_of, unit_of_work
from leadvault.models import InboxItem, InboxStatus


def test_a_batch_takes_the_first_due_items_in_id_order_past_those_not_due(app):
    """Failed items, retries not due yet and leased ones are passed over, on both
    databases; on SQLite without sorting every due item of the backlog (it reads the
    inbox in id order and stops at the limit)."""
    now = clock.now()
    later = now + dt.timedelta(minutes=5)
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        for n in range(8):
            inbox_queueing.enqueue(s, "test.kind", {"n": n})
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        ids = list(s.scalars(sa.select(InboxItem.id).order_by(InboxItem.id)))
        items = {item.id: item for item in s.scalars(sa.select(InboxItem))}
        items[ids[0]].status = InboxStatus.FAILED
        items[ids[1]].next_attempt_at = later  # a retry waiting
        items[ids[3]].locked_until = later  # leased by an earlier version
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        assert [item.id for item in inbox._take(s, 3)] == [ids[2], ids[4], ids[5]]
        assert [item.id for item in inbox._take(s, 10)] == [ids[2], *ids[4:]]
        if dialect_of(s) == "sqlite":
            query = sa.select(InboxItem.id).where(inbox._due(now, by_id=True))
            sql = str(
                query.order_by(InboxItem.id)
                .limit(3)
                .compile(s.get_bind(), compile_kwargs={"literal_binds": True})
            )
            plan = " ".join(row[-1] for row in s.execute(sa.text(f"EXPLAIN QUERY PLAN {sql}")))
            assert "TEMP B-TREE" not in plan, plan
