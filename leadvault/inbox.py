"""The inbox: work accepted by a request, done by the worker in one transaction each.

Claiming works like the outbox's (a lease; ``SKIP LOCKED`` on PostgreSQL).
A handler that fails is retried with backoff; its error type is recorded,
never its message (it may quote personal data).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from leadvault import clock, leases
from leadvault.db import settings_of, unit_of_work, vault_of
from leadvault.models import InboxItem, InboxStatus
from leadvault.sealed import SealedPayload, seal, unseal

log = logging.getLogger("leadvault.inbox")

Handler = Callable[[Session, dict[str, Any]], None]
_FIELD = "inbox"


def enqueue(
    session: Session, kind: str, payload: dict[str, Any], *, subject_email: str | None = None
) -> None:
    """Store the work sealed, in the caller's transaction (a plain INSERT, nothing else)."""
    sealed = seal(vault_of(session), _FIELD, payload)
    now = clock.now()
    # A prepared Core INSERT: building an ORM statement per request costs more
    # than the write itself on this, the hottest path.
    session.connection().execute(
        _INSERT,
        {
            "kind": kind,
            "received_at": now,
            "payload": sealed.payload,
            "payload_owner": sealed.owner,
            "payload_key": sealed.key,
            "payload_key_version": sealed.key_version,
            "status": InboxStatus.PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "subject_index": vault_of(session).blind_index(subject_email)
            if subject_email
            else None,
        },
    )


_INSERT = sa.insert(InboxItem.__table__)


def claim(session: Session, *, worker_id: str, limit: int) -> list[int]:
    return leases.claim(
        session,
        InboxItem,
        lambda now: sa.and_(
            InboxItem.status == InboxStatus.PENDING,
            InboxItem.next_attempt_at <= now,
            sa.or_(InboxItem.locked_until.is_(None), InboxItem.locked_until < now),
        ),
        worker_id=worker_id,
        limit=limit,
    )


def process_one(
    factory: sessionmaker[Session],
    handlers: dict[str, Handler],
    item_id: int,
    *,
    worker_id: str,
) -> bool:
    """Run the item's handler; the item is deleted in the handler's transaction."""
    try:
        with unit_of_work(factory) as session:
            item = session.get(InboxItem, item_id, with_for_update=True)
            if item is None or item.locked_by != worker_id:
                return False
            handler = handlers.get(item.kind)
            if handler is None:
                raise LookupError(f"no handler for inbox kind {item.kind!r}")
            payload = unseal(
                vault_of(session),
                _FIELD,
                SealedPayload(
                    item.payload_owner, item.payload, item.payload_key, item.payload_key_version
                ),
            )
            handler(session, payload)
            session.delete(item)
        return True
    except Exception as exc:  # the handler's transaction is rolled back; record and retry
        _record_failure(factory, item_id, type(exc).__name__)
        return False


def _record_failure(factory: sessionmaker[Session], item_id: int, error: str) -> None:
    with unit_of_work(factory) as session:
        item = session.get(InboxItem, item_id)
        if item is None:
            return
        settings = settings_of(session)
        item.attempts += 1
        item.last_error = error
        item.locked_by = None
        item.locked_until = None
        if item.attempts >= settings.outbox_max_attempts:
            item.status = InboxStatus.FAILED
            log.error("inbox item %s (%s) failed for good: %s", item_id, item.kind, error)
        else:
            item.next_attempt_at = clock.now() + leases.backoff(
                settings.outbox_retry_seconds, item.attempts
            )
            log.warning("inbox item %s (%s) failed, will retry: %s", item_id, item.kind, error)


def process_due(
    factory: sessionmaker[Session],
    handlers: dict[str, Handler],
    *,
    worker_id: str,
    limit: int = 100,
) -> int:
    with unit_of_work(factory) as session:
        ids = claim(session, worker_id=worker_id, limit=limit)
    for item_id in ids:
        process_one(factory, handlers, item_id, worker_id=worker_id)
    return len(ids)


def pending_count(session: Session) -> int:
    return (
        session.scalar(sa.select(sa.func.count()).where(InboxItem.status == InboxStatus.PENDING))
        or 0
    )


def drop_for_subject(session: Session, email_index: bytes) -> int:
    """Erasure: pending work about this address goes with the lead."""
    result = session.execute(sa.delete(InboxItem).where(InboxItem.subject_index == email_index))
    return result.rowcount


def forget_failed(session: Session, older_than: dt.datetime) -> int:
    """Failed items hold sealed personal data: keep them for inspection, not forever."""
    result = session.execute(
        sa.delete(InboxItem).where(
            InboxItem.status == InboxStatus.FAILED, InboxItem.received_at < older_than
        )
    )
    return result.rowcount
