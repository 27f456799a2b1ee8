"""The transactional outbox: enqueue with the change, deliver after commit.

Delivery claims a batch under a lease (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL; SQLite serialises writers anyway), sends each message outside any
transaction, then records the outcome in a short transaction of its own. A
worker killed mid-batch leaves its rows in ``sending`` until the lease runs
out, when another worker takes them again: nothing is lost.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from email.utils import make_msgid

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from leadvault import addresses, clock, leads, leases
from leadvault.crypto import DataKey, DecryptionError, WrappedKey
from leadvault.db import settings_of, unit_of_work, vault_of
from leadvault.mail import DeliveryError, MailContent, Sender, build_message
from leadvault.models import Lead, OutboxAttempt, OutboxKind, OutboxMessage, OutboxStatus

log = logging.getLogger("leadvault.outbox")


def _payload_key(session: Session, row: OutboxMessage, lead: Lead | None) -> DataKey:
    if lead is not None:
        return leads.data_key(session, lead)
    if row.payload_key is None or row.payload_key_version is None:
        raise ValueError(f"outbox row {row.id} has neither a lead nor a key")
    wrapped = WrappedKey(row.payload_key, row.payload_key_version)
    return vault_of(session).unwrap(wrapped, row.payload_owner)


def enqueue_mail(
    session: Session,
    content: MailContent,
    *,
    template: str,
    lead: Lead | None,
    purpose: str | None = None,
) -> OutboxMessage:
    """Queue a mail in the caller's transaction; the worker sends it after commit."""
    owner = str(uuid.uuid4())
    row = OutboxMessage(
        kind=OutboxKind.MAIL,
        template=template,
        purpose=purpose,
        lead_id=lead.id if lead is not None else None,
        payload_owner=owner,
        status=OutboxStatus.PENDING,
        attempts=0,
        next_attempt_at=clock.now(),
        created_at=clock.now(),
        message_id=make_msgid(domain=_mail_domain(session)),
    )
    if lead is not None:
        key = leads.data_key(session, lead)
    else:
        key, wrapped = vault_of(session).new_data_key(owner)
        row.payload_key, row.payload_key_version = wrapped.wrapped, wrapped.version
    # Subject apart, so an access export can list mails without opening bodies.
    row.payload = key.encrypt_json(f"outbox/{owner}", content.to_json())
    row.subject = key.encrypt(f"outbox/{owner}/subject", content.subject)
    session.add(row)
    session.flush()
    return row


def _mail_domain(session: Session) -> str:
    return addresses.domain_of(settings_of(session).mail_from)


def read_content(session: Session, row: OutboxMessage) -> MailContent:
    lead = session.get(Lead, row.lead_id) if row.lead_id is not None else None
    key = _payload_key(session, row, lead)
    return MailContent.from_json(key.decrypt_json(f"outbox/{row.payload_owner}", row.payload))


def read_subject(session: Session, row: OutboxMessage) -> str | None:
    if row.subject is None:
        return None
    lead = session.get(Lead, row.lead_id) if row.lead_id is not None else None
    return _payload_key(session, row, lead).decrypt(
        f"outbox/{row.payload_owner}/subject", row.subject
    )


def cancel_pending(
    session: Session,
    *,
    lead_id: uuid.UUID,
    purpose: str | None = None,
    template: str | None = None,
    before: dt.datetime | None = None,
) -> int:
    """Cancel queued (not yet claimed) mails of a lead, narrowed by purpose, template, age."""
    query = (
        sa.update(OutboxMessage)
        .where(OutboxMessage.lead_id == lead_id, OutboxMessage.status == OutboxStatus.PENDING)
        .values(status=OutboxStatus.CANCELLED, last_error="cancelled")
    )
    if purpose is not None:
        query = query.where(OutboxMessage.purpose == purpose)
    if template is not None:
        query = query.where(OutboxMessage.template == template)
    if before is not None:
        query = query.where(OutboxMessage.created_at < before)
    return session.execute(query.execution_options(synchronize_session=False)).rowcount


def claim(session: Session, *, worker_id: str, limit: int) -> list[int]:
    """Mark up to ``limit`` due mails as ours under a lease; return their ids.

    Other kinds (webhooks) have deliverers of their own (``Runtime.deliverers``)."""
    return leases.claim(
        session,
        OutboxMessage,
        lambda now: sa.and_(
            OutboxMessage.kind == OutboxKind.MAIL,
            sa.or_(
                sa.and_(
                    OutboxMessage.status == OutboxStatus.PENDING,
                    OutboxMessage.next_attempt_at <= now,
                ),
                sa.and_(
                    OutboxMessage.status == OutboxStatus.SENDING, OutboxMessage.locked_until < now
                ),
            ),
        ),
        worker_id=worker_id,
        limit=limit,
        status=OutboxStatus.SENDING,
    )


def deliver_one(
    factory: sessionmaker[Session], sender: Sender, outbox_id: int, *, worker_id: str
) -> bool:
    """Send one claimed row and record the attempt. Returns True when sent."""
    with unit_of_work(factory) as session:
        row = session.get(OutboxMessage, outbox_id)
        if row is None or row.status != OutboxStatus.SENDING or row.locked_by != worker_id:
            return False  # erased, cancelled or re-claimed after our lease ran out
        try:
            content = read_content(session, row)
        except DecryptionError:
            # Its key is gone (a retired master key?): retrying cannot help.
            row.status = OutboxStatus.FAILED
            row.locked_by = row.locked_until = None
            row.last_error = "payload cannot be decrypted"
            log.error("outbox=%s cannot be decrypted; marked failed", outbox_id)
            return False
        message = build_message(content, mail_from=settings_of(session).mail_from)
        message.replace_header("Message-ID", row.message_id or message["Message-ID"])
        template = row.template

    error: DeliveryError | None = None
    try:
        sender.send(message)
    except DeliveryError as exc:
        error = exc

    with unit_of_work(factory) as session:
        settings = settings_of(session)
        row = session.get(OutboxMessage, outbox_id, with_for_update=True)
        if row is None:
            return error is None
        now = clock.now()
        # False when our lease ran out mid-send and another worker re-claimed
        # (or already sent) the row.
        still_ours = row.status == OutboxStatus.SENDING and row.locked_by == worker_id
        row.attempts += 1
        session.add(
            OutboxAttempt(
                outbox_id=outbox_id,
                worker=worker_id,
                attempted_at=now,
                error=None if error is None else str(error),
            )
        )
        if error is not None and not still_ours:
            # The current holder's outcome decides; a late failure must not
            # undo its send or release its lease.
            log.info("late failure outbox=%s after lease lapsed: %s", outbox_id, error)
            return False
        row.locked_by = None
        row.locked_until = None
        if error is None:
            row.status = OutboxStatus.SENT
            row.sent_at = now
            row.last_error = None
            log.info("sent outbox=%s template=%s attempt=%s", outbox_id, template, row.attempts)
            return True
        row.last_error = str(error)
        if error.permanent or row.attempts >= settings.outbox_max_attempts:
            row.status = OutboxStatus.FAILED
            log.warning("gave up outbox=%s template=%s: %s", outbox_id, template, error)
        else:
            row.status = OutboxStatus.PENDING
            row.next_attempt_at = now + leases.backoff(settings.outbox_retry_seconds, row.attempts)
            log.info("retry outbox=%s at %s: %s", outbox_id, row.next_attempt_at, error)
    return False


def deliver_due(
    factory: sessionmaker[Session], sender: Sender, *, worker_id: str, limit: int = 50
) -> int:
    """Claim one batch and deliver it; returns how many rows were handled."""
    with unit_of_work(factory) as session:
        ids = claim(session, worker_id=worker_id, limit=limit)
    for outbox_id in ids:
        deliver_one(factory, sender, outbox_id, worker_id=worker_id)
    return len(ids)
