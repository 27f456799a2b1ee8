"""Recording webhook attempts: each outcome stored, failures retried on the schedule
(with jitter, honouring ``Retry-After``), a failing endpoint disabled and the alert
address told (``export.delivery`` runs the whole delivery).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from export import webhooks
from export.models import EndpointStatus, WebhookAttempt, WebhookEndpoint, WebhookMessage
from export.webhook_requests import Result, _iso
from leadvault import clock
from leadvault.db import settings_of
from leadvault.models import OutboxMessage, OutboxStatus

log = logging.getLogger("leadvault.webhooks")
_MAX_DELAY = dt.timedelta(hours=24)


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
    lang = i18n.DEFAULT_LANGUAGE  # the alert goes to the operator, not to a lead
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
