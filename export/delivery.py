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
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import random
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from export import signing, transport, webhooks
from export.models import EndpointStatus, WebhookAttempt, WebhookEndpoint, WebhookMessage
from leadvault import clock, leads, leases, outbox
from leadvault.app import runtime
from leadvault.db import settings_of, unit_of_work
from leadvault.models import Lead, OutboxKind, OutboxMessage, OutboxStatus

log = logging.getLogger("leadvault.webhooks")
_MAX_DELAY = dt.timedelta(hours=24)


@dataclasses.dataclass(frozen=True)
class Prepared:
    outbox_id: int
    endpoint_id: int
    url: str
    body: bytes
    headers: dict[str, str]
    with_contact: bool


@dataclasses.dataclass(frozen=True)
class Result:
    outbox_id: int
    endpoint_id: int
    status: int | None
    duration_ms: int
    error: str | None
    with_contact: bool = False
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


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


# --- building bodies ------------------------------------------------------------------


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def body_of(message: WebhookMessage, contact: dict[str, str] | None) -> bytes:
    data: dict[str, Any] = dict(message.data or {})
    if contact is not None:
        data["contact"] = contact
    payload = {"type": message.event_type, "timestamp": _iso(message.occurred_at), "data": data}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _contacts(
    session: Session, wanted: set[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], dict[str, str]]:
    """Contact data for (lead, purpose) pairs whose purpose the lead has granted now."""
    from consent.models import Consent, ConsentStatus

    if not wanted:
        return {}
    lead_ids = list({lead_id for lead_id, _purpose in wanted})
    granted = {
        (row.lead_id, row.purpose)
        for row in session.execute(
            sa.select(Consent.lead_id, Consent.purpose).where(
                Consent.lead_id.in_(lead_ids), Consent.status == ConsentStatus.GRANTED
            )
        )
    }
    allowed = {pair for pair in wanted if pair in granted}
    found = {
        lead.id: lead
        for lead in session.scalars(
            sa.select(Lead).where(Lead.id.in_(list({lead_id for lead_id, _p in allowed})))
        )
    }
    result: dict[tuple[uuid.UUID, str], dict[str, str]] = {}
    for lead_id, purpose in allowed:
        lead = found.get(lead_id)
        if lead is None:
            continue
        contact = {"email": leads.email_of(session, lead), "language": lead.language}
        contact.update(sorted(leads.attributes_of(session, lead).items()))
        result[(lead_id, purpose)] = contact
    return result


def prepare(session: Session, ids: Sequence[int], *, worker_id: str) -> list[Prepared | Result]:
    """Signed requests for our claimed rows; a Result where none can be sent."""
    rows = session.execute(
        sa.select(OutboxMessage, WebhookMessage, WebhookEndpoint)
        .outerjoin(WebhookMessage, WebhookMessage.outbox_id == OutboxMessage.id)
        .outerjoin(WebhookEndpoint, WebhookEndpoint.id == WebhookMessage.endpoint_id)
        .where(OutboxMessage.id.in_(list(ids)))
        .order_by(OutboxMessage.id)
    ).all()
    ours = [
        (row, message, endpoint)
        for row, message, endpoint in rows
        if row.status == OutboxStatus.SENDING and row.locked_by == worker_id
    ]
    wanted = {
        (message.lead_id, endpoint.purpose)
        for _row, message, endpoint in ours
        if message is not None
        and endpoint is not None
        and endpoint.purpose
        and message.lead_id is not None
        and message.event_type not in webhooks.NO_CONTACT
    }
    contacts = _contacts(session, wanted)
    configs: dict[int, tuple[webhooks.EndpointConfig, list[str]]] = {}
    timestamp = int(clock.now().timestamp())
    out: list[Prepared | Result] = []
    for row, message, endpoint in ours:
        if message is None or endpoint is None:
            out.append(Result(row.id, 0, None, 0, "endpoint removed"))
            continue
        if endpoint.status != EndpointStatus.ACTIVE:
            out.append(Result(row.id, endpoint.id, None, 0, "endpoint disabled"))
            continue
        if endpoint.id not in configs:
            config = webhooks.config_of(session, endpoint)
            configs[endpoint.id] = (config, webhooks.signing_secrets(endpoint, config))
        config, secrets = configs[endpoint.id]
        contact = (
            contacts.get((message.lead_id, endpoint.purpose))
            if message.lead_id is not None and endpoint.purpose
            else None
        )
        body = body_of(message, contact)
        out.append(
            Prepared(
                row.id,
                endpoint.id,
                config.url,
                body,
                signing.headers(secrets, message.event_id, timestamp, body),
                contact is not None,
            )
        )
    return out


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


# --- recording -------------------------------------------------------------------------


def _next_delay(schedule: Sequence[float], attempts: int, retry_after: float | None) -> float:
    delay = schedule[attempts - 1] * random.uniform(1.0, 1.1)  # noqa: S311 - jitter, not secrecy
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, _MAX_DELAY.total_seconds())


_NOT_SENT = frozenset({"endpoint disabled", "endpoint removed"})


def record(session: Session, results: Iterable[Result], *, worker_id: str) -> list[int]:
    """Store each outcome; returns the ids of endpoints disabled now."""
    now = clock.now()
    outcomes = list(results)
    rows = {
        row.id: row
        for row in session.scalars(
            sa.select(OutboxMessage)
            .where(OutboxMessage.id.in_([r.outbox_id for r in outcomes]))
            .with_for_update()
        )
    }
    endpoints = {
        e.id: e
        for e in session.scalars(
            sa.select(WebhookEndpoint).where(
                WebhookEndpoint.id.in_({r.endpoint_id for r in outcomes if r.endpoint_id})
            )
        )
    }
    to_disable: dict[int, str] = {}
    for result in outcomes:
        row = rows.get(result.outbox_id)
        if row is None:
            continue
        endpoint = endpoints.get(result.endpoint_id)
        if endpoint is not None and result.error not in _NOT_SENT:
            session.add(
                WebhookAttempt(
                    outbox_id=row.id,
                    endpoint_id=endpoint.id,
                    attempted_at=now,
                    status_code=result.status,
                    duration_ms=result.duration_ms,
                    error=result.error,
                )
            )
        if row.status != OutboxStatus.SENDING or row.locked_by != worker_id:
            continue  # our lease ran out mid-send; the current holder's outcome decides
        reason = _apply(session, row, endpoint, result, now)
        if reason is not None and endpoint is not None:
            to_disable.setdefault(endpoint.id, reason)
    session.flush()
    for endpoint_id, reason in to_disable.items():
        endpoint = endpoints[endpoint_id]
        if endpoint.status == EndpointStatus.DISABLED:
            continue
        webhooks.disable(session, endpoint, reason=reason)
        notify_disabled(session, endpoint)
        log.warning("webhook endpoint %s disabled: %s", endpoint_id, reason)
    return list(to_disable)


def _apply(
    session: Session,
    row: OutboxMessage,
    endpoint: WebhookEndpoint | None,
    result: Result,
    now: dt.datetime,
) -> str | None:
    """Update the row (and the endpoint's failure clock); a reason when it must be disabled."""
    settings = settings_of(session)
    schedule = settings.webhook_retry_schedule
    row.locked_by = row.locked_until = None
    if result.error in _NOT_SENT:
        row.status = OutboxStatus.FAILED
        row.last_error = result.error
        return None
    row.attempts += 1
    if result.ok:
        row.status = OutboxStatus.SENT
        row.sent_at = now
        row.last_error = None
        if result.with_contact:
            session.execute(
                sa.update(WebhookMessage)
                .where(WebhookMessage.outbox_id == row.id)
                .values(contact_sent=True)
            )
        if endpoint is not None:
            endpoint.failing_since = None
        return None
    row.last_error = result.error
    if row.attempts > len(schedule):
        row.status = OutboxStatus.FAILED
        log.warning("gave up webhook outbox=%s: %s", row.id, result.error)
    else:
        row.status = OutboxStatus.PENDING
        delay = _next_delay(schedule, row.attempts, result.retry_after)
        row.next_attempt_at = now + dt.timedelta(seconds=delay)
    if endpoint is None:
        return None
    if result.status == 410:
        return "the receiver answered 410 Gone"
    if endpoint.failing_since is None:
        endpoint.failing_since = now
    elif now - endpoint.failing_since >= dt.timedelta(hours=settings.webhook_disable_after_hours):
        return f"failing since {_iso(endpoint.failing_since)}"
    return None


def notify_disabled(session: Session, endpoint: WebhookEndpoint) -> None:
    """Mail the configured address (staff accounts will name the endpoint's owner)."""
    from leadvault import i18n, outbox
    from leadvault.branding import mail_parts
    from leadvault.db import mail_context
    from leadvault.mail import MailContent

    to = settings_of(session).webhook_alert_email
    if to is None:
        log.warning(
            "webhook endpoint %s disabled; set LEADVAULT_WEBHOOK_ALERT_EMAIL to be mailed",
            endpoint.id,
        )
        return
    lang = "en"
    config = webhooks.config_of(session, endpoint)
    context = mail_context(
        session,
        lang,
        endpoint=endpoint,
        host=webhooks.host_of(config),
        reason=endpoint.disabled_reason or "",
    )
    content = MailContent(
        to=to,
        subject=i18n.translate(lang, "Webhook endpoint %(id)s was disabled", id=endpoint.id),
        **mail_parts("export/mail/webhook_disabled", context),
        language=lang,
    )
    outbox.enqueue_mail(session, content, template="webhook_disabled", lead=None)


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

    def deliver_due(self, *, worker_id: str, limit: int) -> int:
        with unit_of_work(self.factory) as session:
            ids = claim(session, worker_id=worker_id, limit=limit)
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
