"""The worker's webhook deliverer: claim, build and sign, send, record.

Per batch: one transaction claims due outbox rows of kind ``webhook`` under a
lease, one reads them (endpoints, consent-checked contact data) and builds the
signed bodies, the requests go out (a few at a time, over kept-alive
connections), and one transaction records every attempt. Contact data is
read at send time and only when the lead granted the endpoint's purpose then;
it is never stored, so no body with personal data outlives its delivery.

Failures are retried on the Standard Webhooks schedule
(``LEADVAULT_WEBHOOK_RETRY_SCHEDULE``) with a little jitter, honouring
``Retry-After``. An endpoint that has failed for
``LEADVAULT_WEBHOOK_DISABLE_AFTER_HOURS`` (or answered 410 Gone) is disabled
and ``LEADVAULT_WEBHOOK_ALERT_EMAIL`` is told.

The requests are built in ``export.webhook_requests``, the outcomes recorded in
``export.webhook_outcomes``; this module claims, sends and runs the batches.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from export import transport
from export.models import EndpointStatus, WebhookEndpoint
from export.webhook_outcomes import record
from export.webhook_requests import Prepared, Result, prepare
from leadvault import leases, outbox
from leadvault.app import runtime
from leadvault.db import unit_of_work
from leadvault.models import OutboxKind, OutboxMessage, OutboxStatus


def claim(session: Session, *, worker_id: str, limit: int) -> list[int]:
    """Lease up to ``limit`` due webhook messages to ``worker_id``; their ids."""
    return outbox.claim(session, OutboxKind.WEBHOOK, worker_id=worker_id, limit=limit)


def claim_ids(session: Session, ids: Sequence[int], *, worker_id: str) -> list[int]:
    """Lease these rows now, whenever they were due (test pings from the CLI)."""
    return leases.claim(
        session,
        OutboxMessage,
        lambda _now: sa.and_(
            OutboxMessage.id.in_(list(ids)), OutboxMessage.status == OutboxStatus.PENDING
        ),
        worker_id=worker_id,
        limit=len(ids),
        status=OutboxStatus.SENDING,
    )


def _any_active_endpoint(session: Session) -> bool:
    return (
        session.scalar(
            sa.select(WebhookEndpoint.id)
            .where(WebhookEndpoint.status == EndpointStatus.ACTIVE)
            .limit(1)
        )
        is not None
    )


# --- sending ---------------------------------------------------------------------------


def send(client: transport.Client, request: Prepared) -> Result:
    try:
        response = client.post(request.url, request.body, request.headers)
    except (transport.AddressRefused, transport.SendFailed) as exc:
        return Result(request.outbox_id, request.endpoint_id, None, 0, str(exc)[:200])
    error = None if 200 <= response.status < 300 else f"HTTP {response.status}"
    return Result(
        request.outbox_id,
        request.endpoint_id,
        response.status,
        response.duration_ms,
        error,
        with_contact=request.with_contact and error is None,
        retry_after=response.retry_after,
    )


# --- the deliverer the worker runs -----------------------------------------------------


class WebhookDeliverer:
    """Delivers due webhooks; one per worker (it keeps connection pools)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        rt = runtime(app)
        self.factory: sessionmaker[Session] = rt.session_factory
        settings = rt.settings
        self.concurrency = settings.webhook_concurrency
        self.client = transport.Client(
            transport.Guard(settings.webhook_allow_networks),
            timeout=settings.webhook_timeout_seconds,
            pool_size=self.concurrency,
        )
        self._executor: ThreadPoolExecutor | None = None
        # No claim before this (``time.monotonic``) while no endpoint is active.
        self.idle_seconds = settings.worker_poll_seconds
        self._clock = time.monotonic
        self._idle_until = 0.0

    def deliver_due(self, *, worker_id: str, limit: int) -> int:
        """Claim and deliver a batch; returns how many rows were handled.

        While no endpoint is active the claim is made at most once per poll interval
        (the worker's mail thread would otherwise make one, and find nothing, after
        every mail batch): an endpoint added meanwhile is served within that interval,
        as work queued by another process is, and the rows of endpoints disabled since
        they were queued are still taken (and recorded as such)."""
        if self._clock() < self._idle_until:
            return 0
        with unit_of_work(self.factory) as session:
            ids = claim(session, worker_id=worker_id, limit=limit)
            if not ids and not _any_active_endpoint(session):
                self._idle_until = self._clock() + self.idle_seconds
        if ids:
            self.deliver(ids, worker_id=worker_id)
        return len(ids)

    def deliver(self, ids: Sequence[int], *, worker_id: str) -> list[Result]:
        """Send claimed rows and record the outcomes."""
        with unit_of_work(self.factory) as session:
            prepared = prepare(session, ids, worker_id=worker_id)
        results = [p for p in prepared if isinstance(p, Result)]
        # In order per endpoint (one connection each), endpoints side by side.
        queues: dict[int, list[Prepared]] = {}
        for request in prepared:
            if isinstance(request, Prepared):
                queues.setdefault(request.endpoint_id, []).append(request)
        if len(queues) > 1 and self.concurrency > 1:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.concurrency, "webhooks")
            for done in self._executor.map(self._send_in_order, queues.values()):
                results += done
        else:
            for queue in queues.values():
                results += self._send_in_order(queue)
        with self.app.app_context(), unit_of_work(self.factory) as session:
            record(session, results, worker_id=worker_id)
        return results

    def _send_in_order(self, queue: list[Prepared]) -> list[Result]:
        return [send(self.client, request) for request in queue]

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self.client.close()
