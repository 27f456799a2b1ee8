"""The transactional outbox: enqueue with the change, deliver after commit.

Delivery claims a batch under a lease (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so any number of workers share the queue; SQLite serialises
writers anyway) and builds its messages in the same transaction, sends them
over one SMTP connection outside any transaction, and records the outcomes in
one short transaction per batch of results (at least every
``RECORD_EVERY_SECONDS``). A worker killed mid-batch leaves its rows in
``sending`` until the lease runs out, when another worker takes them again:
nothing is lost, and what was sent but not yet recorded is sent again (at
least once).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
import uuid
from email.message import Message
from email.utils import make_msgid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from leadvault import addresses, batch, branding, clock, leads, leases
from leadvault.crypto import DataKey, DecryptionError, WrappedKey
from leadvault.db import read_only, settings_of, unit_of_work, vault_of
from leadvault.mail import MailContent, Sender, Wire, build_message, wire_message
from leadvault.models import Lead, OutboxAttempt, OutboxKind, OutboxMessage, OutboxStatus
from leadvault.smtp import DeliveryError

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
    flush: bool = True,
) -> OutboxMessage:
    """Queue a mail in the caller's transaction; the worker sends it after commit.

    ``flush=False`` leaves the row pending so a caller queueing many mails inserts
    them in one flush (the row has no id until then)."""
    values = _mail_row(session, content, template=template, lead=lead, purpose=purpose)
    row = OutboxMessage(**values)
    session.add(row)
    if flush:
        session.flush()
    return row


def queue_mail(
    session: Session,
    content: MailContent,
    *,
    template: str,
    lead: Lead | None,
    purpose: str | None = None,
) -> None:
    """:func:`enqueue_mail` for a caller that needs no row back: in a worker's batch the
    row is written with the batch's other mails in one statement at its end."""
    values = _mail_row(session, content, template=template, lead=lead, purpose=purpose)
    if not batch.insert(session, OutboxMessage.__table__, values):
        session.add(OutboxMessage(**values))
        if batch.active(session) is None:
            session.flush()  # an isolated batch flushes each item's rows in its savepoint


def _mail_row(
    session: Session,
    content: MailContent,
    *,
    template: str,
    lead: Lead | None,
    purpose: str | None,
) -> dict[str, Any]:
    """The outbox row's values: the content sealed under the lead's data key, or under a
    data key of its own (wrapped in the row) for a mail about no lead."""
    owner = str(uuid.uuid4())
    now = clock.now()
    values: dict[str, Any] = {
        "kind": OutboxKind.MAIL,
        "template": template,
        "purpose": purpose,
        "lead_id": lead.id if lead is not None else None,
        "payload_owner": owner,
        "payload_key": None,
        "payload_key_version": None,
        "status": OutboxStatus.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "message_id": make_msgid(domain=_mail_domain(session)),
    }
    if lead is not None:
        key = leads.data_key(session, lead)
    else:
        key, wrapped = vault_of(session).new_data_key(owner)
        values["payload_key"], values["payload_key_version"] = wrapped.wrapped, wrapped.version
    # Subject apart, so an access export can list mails without opening bodies.
    values["payload"] = key.encrypt_json(f"outbox/{owner}", content.to_json())
    values["subject"] = key.encrypt(f"outbox/{owner}/subject", content.subject)
    return values


def _mail_domain(session: Session) -> str:
    return addresses.domain_of(settings_of(session).mail_from)


def forget_sent_bodies(session: Session, sent_before: dt.datetime) -> int:
    """Delete the bodies of mails sent before ``sent_before``; kind, template, times,
    Message-ID, status and the sealed subject stay (the access export lists them)."""
    result = session.execute(
        sa.update(OutboxMessage)
        .where(
            OutboxMessage.status == OutboxStatus.SENT,
            OutboxMessage.sent_at < sent_before,
            OutboxMessage.payload.is_not(None),
        )
        .values(payload=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def read_content(session: Session, row: OutboxMessage) -> MailContent:
    """The mail's content; raises ValueError when its body was deleted (retention)."""
    if row.payload is None:
        raise ValueError(f"outbox row {row.id} has no body any more")
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


@dataclasses.dataclass(frozen=True)
class _Claimed:
    id: int
    template: str
    message: Message | None  # None: its content cannot be opened (or it is held)
    held: str | None = None  # why a marketing mail waits (branding.marketing_blocked)
    wire: Wire | None = None  # the message written for SMTP (then ``message`` is None)


# A held marketing mail is looked at again after this long.
MARKETING_HOLD_SECONDS = 900.0


_UNREADABLE = DeliveryError("payload cannot be decrypted", permanent=True)


def _prepare(session: Session, ids: list[int], *, wire: bool = False) -> list[_Claimed]:
    """Build the claimed mails (reading only: on SQLite without the write lock), their
    leads read at once. ``wire``: the sender takes SMTP bytes (``send_wire``); each mail
    that can be is written as such, the others built as a Message."""
    rows = list(
        session.scalars(
            sa.select(OutboxMessage).where(OutboxMessage.id.in_(ids)).order_by(OutboxMessage.id)
        )
    )
    lead_ids = list({row.lead_id for row in rows if row.lead_id is not None})
    found = (
        {lead.id: lead for lead in session.scalars(sa.select(Lead).where(Lead.id.in_(lead_ids)))}
        if lead_ids
        else {}
    )
    settings = settings_of(session)
    mail_from = settings.mail_from
    # Marketing mail (it carries List-Unsubscribe) waits, uncounted, while a production
    # instance lacks imprint, privacy policy or a real sender.
    held = "; ".join(branding.gaps(settings)) if branding.marketing_blocked(settings) else None
    claimed = []
    for row in rows:
        try:
            if row.payload is None:
                raise ValueError("no body")
            key = _payload_key(session, row, found.get(row.lead_id) if row.lead_id else None)
            content = MailContent.from_json(
                key.decrypt_json(f"outbox/{row.payload_owner}", row.payload)
            )
        except (DecryptionError, ValueError):
            # Its key is gone (a retired master key, an erased lead): retrying cannot help.
            log.error("outbox=%s cannot be decrypted; marked failed", row.id)
            claimed.append(_Claimed(row.id, row.template, None))
            continue
        if held and "List-Unsubscribe" in content.headers:
            claimed.append(_Claimed(row.id, row.template, None, held=held))
            continue
        if wire and row.message_id:
            written = wire_message(
                content,
                mail_from=mail_from,
                reply_to=settings.mail_reply_to,
                message_id=row.message_id,
            )
            if written is not None:
                claimed.append(_Claimed(row.id, row.template, None, wire=written))
                continue
        message = build_message(content, mail_from=mail_from, reply_to=settings.mail_reply_to)
        if row.message_id:
            message.replace_header("Message-ID", row.message_id)
        claimed.append(_Claimed(row.id, row.template, message))
    return claimed


# Results are recorded at least this often while a batch is sent (and at its end): a
# worker killed mid-batch sends again at most what it sent in this time (at least once).
RECORD_EVERY_SECONDS = 0.25


def _record(
    factory: sessionmaker[Session],
    results: list[tuple[_Claimed, DeliveryError | None]],
    *,
    worker_id: str,
) -> int:
    """Record a batch of outcomes in one transaction; returns how many were sent."""
    if not results:
        return 0
    succeeded = {claimed.id for claimed, error in results if error is None and claimed.held is None}
    others = [(claimed, error) for claimed, error in results if claimed.id not in succeeded]
    sent = len(succeeded)
    with unit_of_work(factory) as session:
        settings = settings_of(session)
        connection = session.connection()
        now = clock.now()
        # Locked in id order, as every recorder locks them (no deadlock between workers);
        # a row erased meanwhile is gone and gets no attempt.
        found = list(
            connection.scalars(
                sa.select(OutboxMessage.id)
                .where(OutboxMessage.id.in_([claimed.id for claimed, _error in results]))
                .order_by(OutboxMessage.id)
                .with_for_update()
            )
        )
        delivered = [row_id for row_id in found if row_id in succeeded]
        if delivered:
            # Sent is sent, whoever holds the lease now: one statement for the batch.
            connection.execute(
                sa.update(OutboxMessage)
                .where(OutboxMessage.id.in_(delivered))
                .values(
                    status=OutboxStatus.SENT,
                    sent_at=now,
                    last_error=None,
                    locked_by=None,
                    locked_until=None,
                    attempts=OutboxMessage.attempts + 1,
                )
            )
            connection.execute(
                sa.insert(OutboxAttempt.__table__),
                [
                    {"outbox_id": row_id, "worker": worker_id, "attempted_at": now, "error": None}
                    for row_id in delivered
                ],
            )
        rows = (
            {
                row.id: row
                for row in session.scalars(
                    sa.select(OutboxMessage).where(
                        OutboxMessage.id.in_([claimed.id for claimed, _error in others])
                    )
                )
            }
            if others
            else {}
        )
        attempts = []
        for claimed, error in others:
            row = rows.get(claimed.id)
            if row is None:
                continue
            if claimed.held is not None:
                row.status = OutboxStatus.PENDING
                row.locked_by = row.locked_until = None
                row.next_attempt_at = now + dt.timedelta(seconds=MARKETING_HOLD_SECONDS)
                row.last_error = f"held: {claimed.held}"
                log.warning("marketing mail outbox=%s held: branding incomplete", row.id)
                continue
            # False when our lease ran out mid-send and another worker re-claimed
            # (or already sent) the row.
            still_ours = row.status == OutboxStatus.SENDING and row.locked_by == worker_id
            row.attempts += 1
            attempts.append(
                OutboxAttempt(
                    outbox_id=row.id,
                    worker=worker_id,
                    attempted_at=now,
                    error=None if error is None else str(error),
                )
            )
            if error is not None and not still_ours:
                # The current holder's outcome decides; a late failure must not
                # undo its send or release its lease.
                log.info("late failure outbox=%s after lease lapsed: %s", row.id, error)
                continue
            row.locked_by = None
            row.locked_until = None
            if error is None:
                row.status = OutboxStatus.SENT
                row.sent_at = now
                row.last_error = None
                sent += 1
                continue
            row.last_error = str(error)
            if error.permanent or row.attempts >= settings.outbox_max_attempts:
                row.status = OutboxStatus.FAILED
                log.warning("gave up outbox=%s template=%s: %s", row.id, claimed.template, error)
            else:
                row.status = OutboxStatus.PENDING
                row.next_attempt_at = now + leases.backoff(
                    settings.outbox_retry_seconds, row.attempts
                )
                log.info("retry outbox=%s at %s: %s", row.id, row.next_attempt_at, error)
        session.add_all(attempts)
    log.info("sent %s of %s mails", sent, len(results))
    return sent


def deliver_due(
    factory: sessionmaker[Session], sender: Sender, *, worker_id: str, limit: int = 50
) -> int:
    """Claim a batch, send it over the sender's one connection, record the outcomes in
    a transaction per batch of results; returns how many rows were handled.

    The claim is a short transaction; the messages are built reading only. Sending
    stops when the lease is nearly over: the rest return to the queue when it has run
    out.
    """
    with unit_of_work(factory) as session:
        ids = claim(session, worker_id=worker_id, limit=limit)
        lease = settings_of(session).outbox_lease_seconds
    if not ids:
        return 0
    deadline = time.monotonic() + lease * 0.8
    send_wire = getattr(sender, "send_wire", None)
    with read_only(factory) as session:
        claimed = _prepare(session, ids, wire=send_wire is not None)
    results: list[tuple[_Claimed, DeliveryError | None]] = []
    recorded_at = time.monotonic()
    for done, item in enumerate(claimed):
        if time.monotonic() > deadline:
            left = len(claimed) - done
            log.warning("lease nearly over: %s mails left for the next claim", left)
            break
        if item.held is not None:
            results.append((item, None))
            continue
        try:
            if item.wire is not None and send_wire is not None:
                send_wire(item.wire)
            elif item.message is None:
                raise _UNREADABLE
            else:
                sender.send(item.message)
            results.append((item, None))
        except DeliveryError as exc:
            results.append((item, exc))
        if time.monotonic() - recorded_at >= RECORD_EVERY_SECONDS:
            _record(factory, results, worker_id=worker_id)
            results, recorded_at = [], time.monotonic()
    _record(factory, results, worker_id=worker_id)
    return len(ids)
