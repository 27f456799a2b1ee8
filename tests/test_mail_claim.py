"""Mail delivery knows from its claim whether more mail is due, and the webhook
deliverer does not claim after every mail batch while no endpoint is active.

A claim selects one row beyond its batch and leaves that row as it was: after a full
batch the mail thread claims again at once only when more is due, else it waits for
a ring or the poll interval, as after a claim that came back empty (which cost ~3 ms
CPU a batch). Real database (both), real SMTP relay on loopback.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from export import delivery, webhooks
from leadvault import leases, mail_delivery
from leadvault.app import runtime
from leadvault.db import unit_of_work
from leadvault.models import OutboxStatus
from leadvault.worker import Worker
from tests.test_outbox import enqueue, message_ids, outbox_rows
from tests.test_webhooks import LOOPBACK, Receiver

LIMIT = 3


def claim(app: Any, limit: int = LIMIT) -> leases.Claim:
    with unit_of_work(runtime(app).session_factory) as s:
        return mail_delivery.claim_batch(s, worker_id="test", limit=limit)


def test_a_claim_takes_its_batch_and_tells_whether_more_mail_is_due(app):
    queued = sorted(enqueue(app, LIMIT + 1))
    first = claim(app)
    assert first.ids == queued[:LIMIT]
    assert first.more
    # The row beyond the batch is left as it was: due, for the next claim.
    extra = outbox_rows(app)[-1]
    assert extra.id == queued[-1]
    assert extra.status == OutboxStatus.PENDING
    assert extra.locked_by is None
    assert extra.locked_until is None
    second = claim(app)
    assert second.ids == [queued[-1]]
    assert not second.more
    assert claim(app) == leases.Claim([], more=False)


def test_exactly_a_batch_due_is_a_full_batch_with_nothing_more(app):
    queued = sorted(enqueue(app, LIMIT))
    assert claim(app) == leases.Claim(queued, more=False)


class _Bell:
    """Stands in for the worker's bell: the mail thread's first wait for it stops the
    loop (nobody rings here), and says how many claims came before it."""

    def __init__(self, stop: threading.Event, claims: list[leases.Claim]) -> None:
        self.stop = stop
        self.claims = claims
        self.claims_before_wait: int | None = None
        self.rung = 0

    def wait(self, seen: int, timeout: float) -> None:
        self.claims_before_wait = len(self.claims)
        self.stop.set()


def _run_mail_loop(app: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[_Bell, list[leases.Claim]]:
    claims: list[leases.Claim] = []
    real = mail_delivery.claim_batch

    def spy(session: Any, *, worker_id: str, limit: int) -> leases.Claim:
        claims.append(real(session, worker_id=worker_id, limit=limit))
        return claims[-1]

    monkeypatch.setattr(mail_delivery, "claim_batch", spy)
    worker = Worker(app)
    stop = threading.Event()
    bell = _Bell(stop, claims)
    worker._mail_bell = bell  # type: ignore[assignment]
    try:
        worker._deliver_loop(stop, worker.sender, LIMIT, False)
    finally:
        worker.close()
    return bell, claims


def test_after_a_full_batch_with_nothing_more_due_the_mail_thread_does_not_claim_again(
    app, smtp_server, monkeypatch
):
    stored = enqueue(app, LIMIT)
    bell, claims = _run_mail_loop(app, monkeypatch)
    assert message_ids(smtp_server.wait_for(LIMIT)) == [stored[i] for i in sorted(stored)]
    assert all(row.status == OutboxStatus.SENT for row in outbox_rows(app))
    # One claim, then the wait for the bell: no claim that comes back empty.
    assert [len(c.ids) for c in claims] == [LIMIT]
    assert bell.claims_before_wait == 1


def test_when_more_is_due_the_mail_thread_claims_again_at_once(app, smtp_server, monkeypatch):
    stored = enqueue(app, 2 * LIMIT)
    bell, claims = _run_mail_loop(app, monkeypatch)
    assert sorted(message_ids(smtp_server.wait_for(2 * LIMIT))) == sorted(stored.values())
    # The second batch was full too and nothing beyond it was due: no third claim.
    assert [(len(c.ids), c.more) for c in claims] == [(LIMIT, True), (LIMIT, False)]
    assert bell.claims_before_wait == 2


# --- webhooks: no claim after every mail batch while no endpoint is active -------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_without_an_active_endpoint_webhooks_are_claimed_once_per_poll_interval(
    make_app, monkeypatch
):
    app = make_app(webhook_allow_networks=LOOPBACK)
    claims: list[int] = []
    real = delivery.claim

    def counted(session: Any, *, worker_id: str, limit: int) -> list[int]:
        ids = real(session, worker_id=worker_id, limit=limit)
        claims.append(len(ids))
        return ids

    monkeypatch.setattr(delivery, "claim", counted)
    deliverer = delivery.WebhookDeliverer(app)
    clock = _Clock()
    deliverer._clock = clock
    try:
        assert deliverer.deliver_due(worker_id="test", limit=10) == 0
        assert deliverer.deliver_due(worker_id="test", limit=10) == 0
        assert claims == [0]  # the second round made no claim
        with Receiver() as crm:
            # An endpoint added meanwhile, and an event for it: served once the poll
            # interval has passed.
            with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
                endpoint, _secret = webhooks.create_endpoint(s, url=crm.url)
                webhooks.enqueue_test(s, endpoint)
            assert deliverer.deliver_due(worker_id="test", limit=10) == 0
            assert claims == [0]
            clock.now += deliverer.idle_seconds
            assert deliverer.deliver_due(worker_id="test", limit=10) == 1
            crm.wait_for(1)
        assert claims == [0, 1]
        # With an endpoint active every round claims, empty or not.
        assert deliverer.deliver_due(worker_id="test", limit=10) == 0
        assert deliverer.deliver_due(worker_id="test", limit=10) == 0
        assert claims == [0, 1, 0, 0]
    finally:
        deliverer.close()
