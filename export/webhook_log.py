"""The webhook delivery log: an endpoint's recent deliveries and attempts, counts by
status, and forgetting deliveries older than LEADVAULT_WEBHOOK_LOG_DAYS.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Session

from export.models import WebhookAttempt, WebhookEndpoint, WebhookMessage
from leadvault import clock
from leadvault.db import settings_of
from leadvault.models import OutboxKind, OutboxMessage, OutboxStatus


@dataclasses.dataclass(frozen=True)
class LogEntry:
    outbox_id: int
    event_id: str
    event_type: str
    status: str
    attempts: int
    last_error: str | None
    occurred_at: dt.datetime


def messages(session: Session, endpoint: WebhookEndpoint, *, limit: int = 50) -> list[LogEntry]:
    rows = session.execute(
        sa.select(WebhookMessage, OutboxMessage)
        .join(OutboxMessage, OutboxMessage.id == WebhookMessage.outbox_id)
        .where(WebhookMessage.endpoint_id == endpoint.id)
        .order_by(WebhookMessage.outbox_id.desc())
        .limit(limit)
    ).all()
    return [
        LogEntry(
            m.outbox_id, m.event_id, m.event_type, o.status, o.attempts, o.last_error, m.occurred_at
        )
        for m, o in rows
    ]


def attempts(
    session: Session, endpoint: WebhookEndpoint, *, limit: int = 50
) -> list[WebhookAttempt]:
    return list(
        session.scalars(
            sa.select(WebhookAttempt)
            .where(WebhookAttempt.endpoint_id == endpoint.id)
            .order_by(WebhookAttempt.id.desc())
            .limit(limit)
        )
    )


def counts(session: Session) -> dict[int, dict[str, int]]:
    """Per endpoint: deliveries by outbox status."""
    rows = session.execute(
        sa.select(WebhookMessage.endpoint_id, OutboxMessage.status, sa.func.count())
        .join(OutboxMessage, OutboxMessage.id == WebhookMessage.outbox_id)
        .group_by(WebhookMessage.endpoint_id, OutboxMessage.status)
    ).all()
    result: dict[int, dict[str, int]] = {}
    for endpoint_id, status, number in rows:
        result.setdefault(endpoint_id, {})[status] = number
    return result


def purge_log(session: Session) -> int:
    """Forget deliveries (and their attempts) older than LEADVAULT_WEBHOOK_LOG_DAYS."""
    days = settings_of(session).webhook_log_days
    before = clock.now() - dt.timedelta(days=days)
    done = sa.select(WebhookMessage.outbox_id).where(WebhookMessage.occurred_at < before)
    return session.execute(
        sa.delete(OutboxMessage)
        .where(
            OutboxMessage.kind == OutboxKind.WEBHOOK,
            OutboxMessage.id.in_(done),
            OutboxMessage.status.in_(
                [OutboxStatus.SENT.value, OutboxStatus.FAILED.value, OutboxStatus.CANCELLED.value]
            ),
        )
        .execution_options(synchronize_session=False)
    ).rowcount
