"""Reports on how the machinery runs rather than on leads, for the console's dashboard and
the admin API: bot verdicts per day, and the outbox and inbox queues. Aggregates only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from capture import service as capture_service
from leadvault import clock
from leadvault.models import InboxItem, InboxStatus, OutboxMessage, OutboxStatus

# --- bots ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BotDay:
    day: dt.date  # a UTC day (the capture package counts per UTC day)
    dropped: int  # submissions refused as bots
    accepted: int  # flagged but kept (too fast)
    reasons: dict[str, int]


def bot_days(session: Session, *, days: int, now: dt.datetime | None = None) -> list[BotDay]:
    """Bot verdicts per UTC day over the last ``days`` days, every day present."""
    today = (now or clock.now()).astimezone(dt.UTC).date()
    first = today - dt.timedelta(days=days - 1)
    per_day: dict[dt.date, dict[str, int]] = {
        first + dt.timedelta(days=i): defaultdict(int) for i in range(days)
    }
    outcome: dict[dt.date, dict[str, int]] = {day: defaultdict(int) for day in per_day}
    for row in capture_service.bot_report(session, first, today):
        per_day[row.day][row.reason] += row.count
        outcome[row.day][row.outcome] += row.count
    return [
        BotDay(day, outcome[day]["dropped"], outcome[day]["accepted"], dict(sorted(r.items())))
        for day, r in per_day.items()
    ]


# --- outbox and inbox ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class QueueHealth:
    name: str  # "outbox" or "inbox"
    queued: int  # waiting to be delivered / processed (including retries)
    retrying: int  # queued after at least one failed attempt
    failed: int  # given up on
    oldest: dt.datetime | None  # when the oldest queued item was created

    def age(self, now: dt.datetime | None = None) -> dt.timedelta | None:
        return (now or clock.now()) - self.oldest if self.oldest else None


def queue_health(session: Session) -> list[QueueHealth]:
    """The outbox (mails, webhooks) and the inbox (accepted submissions)."""
    out_queued = OutboxMessage.status.in_([OutboxStatus.PENDING.value, OutboxStatus.SENDING.value])
    outbox = session.execute(
        sa.select(
            sa.func.count().filter(out_queued),
            sa.func.count().filter(out_queued, OutboxMessage.attempts > 0),
            sa.func.count().filter(OutboxMessage.status == OutboxStatus.FAILED.value),
            sa.func.min(OutboxMessage.created_at).filter(out_queued),
        )
    ).one()
    in_queued = InboxItem.status == InboxStatus.PENDING.value
    inbox = session.execute(
        sa.select(
            sa.func.count().filter(in_queued),
            sa.func.count().filter(in_queued, InboxItem.attempts > 0),
            sa.func.count().filter(InboxItem.status == InboxStatus.FAILED.value),
            sa.func.min(InboxItem.received_at).filter(in_queued),
        )
    ).one()
    return [
        QueueHealth("outbox", *(int(v) for v in outbox[:3]), _aware(outbox[3])),
        QueueHealth("inbox", *(int(v) for v in inbox[:3]), _aware(inbox[3])),
    ]


def _aware(value: Any) -> dt.datetime | None:
    """``min()`` bypasses the column type on SQLite: parse and mark UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
