"""Delivering the outbox's mails: claim a batch, build it, send it, record the outcomes.

Delivery claims a batch under a lease (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so any number of workers share the queue; SQLite serialises
writers anyway) and builds its messages reading only, sends them over one SMTP
connection outside any transaction, and records the outcomes in one short
transaction per batch of results (at least every ``RECORD_EVERY_SECONDS``). A
worker killed mid-batch leaves its rows in ``sending`` until the lease runs
out, when another worker takes them again: nothing is lost, and what was sent
but not yet recorded is sent again (at least once). The claim on SQLite and the
records are ``leadvault.mail_record``'s: set-based statements built before the
transaction, whose write lock capture waits for.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from email.message import Message
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session, sessionmaker

from leadvault import branding, id_sets, leases, outbox, sqlite_writer
from leadvault.crypto import DecryptionError
from leadvault.db import dialect_of, read_only, settings_of, unit_of_work, vault_of
from leadvault.mail import MailContent, Sender, Wire, build_message, wire_message
from leadvault.mail_record import claim_postgresql, claim_sqlite, record
from leadvault.models import Lead, OutboxKind, OutboxMessage
from leadvault.outbox import payload_key_of
from leadvault.prepared import Prepared
from leadvault.smtp import DeliveryError

log = logging.getLogger("leadvault.outbox")


def claim(session: Session, *, worker_id: str, limit: int) -> list[int]:
    """Lease up to ``limit`` due mails to ``worker_id``; their ids."""
    return outbox.claim(session, OutboxKind.MAIL, worker_id=worker_id, limit=limit)


def claim_batch(session: Session, *, worker_id: str, limit: int) -> leases.Claim:
    """As ``claim``, and whether more mail was due than it took (``leases.claim_batch``):
    after a full batch the worker claims again at once only then, not to find nothing
    (a claim that comes back empty cost ~3 ms CPU, one per batch on PostgreSQL).
    On SQLite, with one writer and no row locks to skip, in two statements under the
    write lock (``mail_record.claim_sqlite``); on PostgreSQL as ``leases.claim_batch``
    claims, with statements compiled once (``mail_record.claim_postgresql``)."""
    if dialect_of(session) == "sqlite":
        return claim_sqlite(session, worker_id=worker_id, limit=limit)
    return claim_postgresql(session, worker_id=worker_id, limit=limit)


@dataclasses.dataclass(frozen=True)
class Delivered:
    """What a round of ``deliver_batch`` did: the rows it handled, and whether more
    were due when it claimed them."""

    handled: int
    more: bool


@dataclasses.dataclass(frozen=True)
class _Claimed:
    id: int
    template: str
    message: Message | None  # None: its content cannot be opened (or it is held)
    held: str | None = None  # why a marketing mail waits (branding.marketing_blocked)
    wire: Wire | None = None  # the message written for SMTP (then ``message`` is None)
    broken: DeliveryError | None = None  # why it cannot be sent at all (``message`` is None)


_UNREADABLE = DeliveryError("payload cannot be decrypted", permanent=True)
_UNBUILDABLE = DeliveryError("a header the mail cannot have (a line break)", permanent=True)


def _prepare(session: Session, ids: list[int], *, wire: bool = False) -> list[_Claimed]:
    """Build the claimed mails (reading only: on SQLite without the write lock), read
    with their leads' keys in one statement (``_claimed_rows``). ``wire``: the sender
    takes SMTP bytes (``send_wire``); each mail that can be is written as such, the
    others built as a Message. Rows, not ORM objects: nothing here changes them (a
    tenth of the mail stage's CPU otherwise)."""
    rows = _claimed_rows(session, ids)
    vault = vault_of(session)
    settings = settings_of(session)
    mail_from = settings.mail_from
    # Marketing mail (it carries List-Unsubscribe) waits, uncounted, while a production
    # instance lacks imprint, privacy policy or a real sender.
    held = "; ".join(branding.gaps(settings)) if branding.marketing_blocked(settings) else None
    claimed = []
    # The batch's quoted-printable lines, each encoded once (its mails share templates);
    # held for this batch only (some lines carry a lead's name or link).
    qp_lines: dict[str, str] = {}
    for row in rows:
        try:
            if row.payload is None:
                raise ValueError("no body")
            if row.lead_key is not None:
                key = vault.unwrap_stored(row.lead_key, row.lead_key_version, row.lead_id)
            else:  # about no lead (or one erased meanwhile: then it has no key)
                key = payload_key_of(vault, row)
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
                qp_lines=qp_lines,
            )
            if written is not None:
                claimed.append(_Claimed(row.id, row.template, None, wire=written))
                continue
        try:
            message = build_message(content, mail_from=mail_from, reply_to=settings.mail_reply_to)
        except ValueError:
            # The email package refuses a header with a line break: this one mail fails,
            # not the batch (it would be claimed again and fail every batch it is in).
            log.error("outbox=%s cannot be built as a mail; marked failed", row.id)
            claimed.append(_Claimed(row.id, row.template, None, broken=_UNBUILDABLE))
            continue
        if row.message_id:
            message.replace_header("Message-ID", row.message_id)
        claimed.append(_Claimed(row.id, row.template, message))
    return claimed


class _Row(NamedTuple):
    """A claimed mail's outbox row with its lead's wrapped data key (``_read_on``)."""

    id: int
    template: str
    lead_id: uuid.UUID | None
    payload_owner: str
    payload_key: bytes | None
    payload_key_version: int | None
    payload: bytes | None
    message_id: str | None
    lead_key: bytes | None  # None: about no lead, or its lead is gone
    lead_key_version: int | None


def _claimed_rows(session: Session, ids: list[int]) -> list[_Row]:
    """The claimed mails' rows and their leads' keys, in id order: one statement
    compiled once (``_read_on``), its ids one parameter, on the driver's cursor."""
    dialect = session.get_bind().dialect
    read, lead_id = _read_on(dialect)
    found = read.bind({"ids": id_sets.value(ids, dialect.name)}).all(session.connection())
    rows = [_Row._make(row) for row in found]
    if lead_id is None:  # the driver gives a UUID (psycopg)
        return rows
    return [
        row._replace(lead_id=lead_id(row.lead_id)) if row.lead_id is not None else row
        for row in rows
    ]


@functools.lru_cache(maxsize=8)
def _read_on(dialect: Dialect) -> tuple[Prepared, Callable[[Any], Any] | None]:
    """The read of ``_claimed_rows`` and the conversion of the lead id the driver gives
    (SQLite: hex text) to a UUID, the form its key's associated data names it by."""
    outbox_table, leads = OutboxMessage.__table__, Lead.__table__
    read = (
        sa.select(
            outbox_table.c.id,
            outbox_table.c.template,
            outbox_table.c.lead_id,
            outbox_table.c.payload_owner,
            outbox_table.c.payload_key,
            outbox_table.c.payload_key_version,
            outbox_table.c.payload,
            outbox_table.c.message_id,
            leads.c.wrapped_key,
            leads.c.key_version,
        )
        .select_from(outbox_table.outerjoin(leads, leads.c.id == outbox_table.c.lead_id))
        .where(id_sets.one_of(outbox_table.c.id, dialect.name))
        .order_by(outbox_table.c.id)
    )
    uuid_type = outbox_table.c.lead_id.type.dialect_impl(dialect)
    return Prepared(read, dialect), uuid_type.result_processor(dialect, None)


# Results are recorded at least this often while a batch is sent (and at its end): a
# worker killed mid-batch sends again at most what it sent in this time (at least once).
RECORD_EVERY_SECONDS = 0.25


def deliver_due(
    factory: sessionmaker[Session], sender: Sender, *, worker_id: str, limit: int = 50
) -> int:
    """Claim a batch, send it over the sender's one connection, record the outcomes in
    a transaction per batch of results; returns how many rows were handled."""
    return deliver_batch(factory, sender, worker_id=worker_id, limit=limit).handled


def deliver_batch(
    factory: sessionmaker[Session], sender: Sender, *, worker_id: str, limit: int = 50
) -> Delivered:
    """As ``deliver_due``, and tells whether more mail was due at the claim.

    The claim is a short transaction; the messages are built reading only. Sending
    stops when the lease is nearly over: the rest return to the queue when it has run
    out.
    """
    with unit_of_work(factory) as session:
        sqlite_writer.writes(session, sqlite_writer.MAIN)  # the outbox: not the queue file's lock
        claimed_rows = claim_batch(session, worker_id=worker_id, limit=limit)
        lease = settings_of(session).outbox_lease_seconds
    ids = claimed_rows.ids
    if not ids:
        return Delivered(0, more=False)
    deadline = time.monotonic() + lease * 0.8
    send_wire = getattr(sender, "send_wire", None)
    with read_only(factory) as session:
        claimed = _prepare(session, ids, wire=send_wire is not None)
    results: list[tuple[_Claimed, DeliveryError | None]] = []
    recorded_at = time.monotonic()
    for item, error in _outcomes(sender, _due(claimed, deadline)):
        results.append((item, error))
        if time.monotonic() - recorded_at >= RECORD_EVERY_SECONDS:
            record(factory, results, worker_id=worker_id)
            results, recorded_at = [], time.monotonic()
    record(factory, results, worker_id=worker_id)
    return Delivered(len(ids), more=claimed_rows.more)


def _due(claimed: list[_Claimed], deadline: float) -> Iterator[_Claimed]:
    """The claimed mails until the lease is nearly over: the rest return to the queue
    when it has run out."""
    for done, item in enumerate(claimed):
        if time.monotonic() > deadline:
            left = len(claimed) - done
            log.warning("lease nearly over: %s mails left for the next claim", left)
            return
        yield item


def _outcomes(
    sender: Sender, claimed: Iterable[_Claimed]
) -> Iterator[tuple[_Claimed, DeliveryError | None]]:
    """Each mail and its outcome (None: sent or held), in order. A run of mails written
    for the wire goes by the sender's ``send_wires`` when it has one (pipelined: a
    mail's outcome comes once the next one is taken)."""
    send_wires = getattr(sender, "send_wires", None)
    for wired, run in itertools.groupby(claimed, key=lambda item: item.wire is not None):
        if wired and send_wires is not None:
            taken: collections.deque[_Claimed] = collections.deque()
            for error in send_wires(_wires(run, taken)):
                yield taken.popleft(), error
            continue
        for item in run:
            yield item, _send(sender, item)


def _wires(run: Iterable[_Claimed], taken: collections.deque[_Claimed]) -> Iterator[Wire]:
    """The run's wires, each mail noted as it is taken (its outcome comes later)."""
    for item in run:
        assert item.wire is not None
        taken.append(item)
        yield item.wire


def _send(sender: Sender, item: _Claimed) -> DeliveryError | None:
    if item.held is not None:
        return None
    try:
        if item.wire is not None:
            sender.send_wire(item.wire)  # type: ignore[attr-defined]
        elif item.message is None:
            raise item.broken or _UNREADABLE
        else:
            sender.send(item.message)
    except DeliveryError as exc:
        return exc
    return None
