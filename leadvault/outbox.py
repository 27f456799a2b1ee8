"""The transactional outbox: enqueue with the change, deliver after commit.

A mail is queued in the transaction of the change that causes it, its content
sealed under the lead's data key (or a key of its own for a mail about no
lead); ``leadvault.mail_delivery`` claims, sends and records it after commit.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from email.utils import make_msgid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from leadvault import addresses, batch, clock, leads, leases
from leadvault.crypto import DataKey, Vault
from leadvault.db import settings_of, vault_of
from leadvault.mail import MailContent
from leadvault.models import Lead, OutboxKind, OutboxMessage, OutboxStatus


def due(kind: OutboxKind) -> Callable[[dt.datetime], sa.ColumnElement[bool]]:
    """Which messages of ``kind`` are due at a time: pending and due, or sending under an
    expired lease (a worker that died mid-delivery)."""

    def condition(now: dt.datetime) -> sa.ColumnElement[bool]:
        return sa.and_(
            OutboxMessage.kind == kind,
            sa.or_(
                sa.and_(
                    OutboxMessage.status == OutboxStatus.PENDING,
                    OutboxMessage.next_attempt_at <= now,
                ),
                sa.and_(
                    OutboxMessage.status == OutboxStatus.SENDING, OutboxMessage.locked_until < now
                ),
            ),
        )

    return condition


def claim(session: Session, kind: OutboxKind, *, worker_id: str, limit: int) -> list[int]:
    """Lease up to ``limit`` due messages of ``kind`` (``due``) to ``worker_id``; their
    ids. Mail and webhooks each have their deliverer (``Runtime.deliverers``)."""
    return leases.claim(
        session,
        OutboxMessage,
        due(kind),
        worker_id=worker_id,
        limit=limit,
        status=OutboxStatus.SENDING,
    )


def _payload_key(session: Session, row: OutboxMessage, lead: Lead | None) -> DataKey:
    if lead is not None:
        return leads.data_key(session, lead)
    return payload_key_of(vault_of(session), row)


def payload_key_of(vault: Vault, row: OutboxMessage | sa.Row[Any]) -> DataKey:
    """The data key of a mail about no lead, wrapped in its row."""
    if row.payload_key is None or row.payload_key_version is None:
        raise ValueError(f"outbox row {row.id} has neither a lead nor a key")
    return vault.unwrap_stored(row.payload_key, row.payload_key_version, row.payload_owner)


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
    batch.add(session, OutboxMessage, values)


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
