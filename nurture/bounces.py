"""Bounces and complaints: parse delivery status notifications (RFC 3464) and
abuse reports (ARF, RFC 5965), find the mail and lead they are about, act.

A hard bounce (``Action: failed``, status 5.x.x) suppresses the address for
marketing mail (until the lead confirms a purpose again) and ends its runs; a
complaint withdraws every marketing purpose through the consent ledger. Soft
bounces (4.x.x, delayed) change nothing: the outbox already retried.

The mail a report is about is found, in this order, by the VERP return path
``bounce+<send>-<tag>@LEADVAULT_BOUNCE_DOMAIN`` (where the report was sent, or
the original's Return-Path), by the signed one-click unsubscribe link in the
original's headers, or by the recipient address (through the blind index).
"""

from __future__ import annotations

import contextlib
import dataclasses
import imaplib
import logging
import re
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from email.utils import getaddresses, parseaddr
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from consent import rights
from consent import service as consent_service
from consent.ledger import RequestMeta
from leadvault import clock, leads, outbox
from leadvault.crypto import TokenExpired, TokenInvalid
from leadvault.db import settings_of
from leadvault.models import Lead
from leadvault.settings import ImapConfig
from nurture import mails, service
from nurture.models import Send

log = logging.getLogger("leadvault.nurture.bounces")
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_UNSUBSCRIBE = re.compile(r"/u/([A-Za-z0-9_\-\.]+)")
MAX_MESSAGE_BYTES = 10 * 1024 * 1024


@dataclasses.dataclass
class Report:
    kind: str  # "bounce", "complaint" or "other"
    hard: bool = False
    status: str | None = None
    recipients: list[str] = dataclasses.field(default_factory=list)
    verp: list[str] = dataclasses.field(default_factory=list)  # candidate VERP addresses
    unsubscribe_tokens: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Outcome:
    kind: str
    action: str  # suppressed, withdrawn, soft, unknown_lead, not_a_report, already

    def describe(self) -> str:
        return f"{self.kind}: {self.action}"


def _fields(part: Message) -> list[Message]:
    """The field groups of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    if isinstance(payload, str):  # some parsers leave it as text: parse the groups
        groups = [g for g in re.split(r"\r?\n\r?\n", payload.strip()) if g.strip()]
        return [
            message_from_bytes(g.encode("utf-8", "replace"), policy=policy.default) for g in groups
        ]
    return []


def _address(value: str | None) -> str | None:
    if not value:
        return None
    _type, _sep, address = str(value).partition(";")
    address = (address if _sep else _type).strip().strip("<>")
    return address if "@" in address else None


def _scan_headers(headers: Message, report: Report) -> None:
    """Collect VERP addresses and unsubscribe tokens from a message's headers."""
    for name in ("Return-Path", "To", "Delivered-To", "X-Original-To", "Envelope-To"):
        for value in headers.get_all(name) or []:
            for _display, address in getaddresses([str(value)]):
                if address.lower().startswith("bounce+"):
                    report.verp.append(address)
    for value in headers.get_all("List-Unsubscribe") or []:
        report.unsubscribe_tokens.extend(_UNSUBSCRIBE.findall(str(value)))


def _original_headers(message: EmailMessage) -> Message | None:
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                return payload[0]
        if content_type == "text/rfc822-headers":
            text = part.get_payload(decode=True) or b""
            return message_from_bytes(bytes(text), policy=policy.default)
    return None


def parse(raw: bytes) -> Report:
    message = message_from_bytes(raw[:MAX_MESSAGE_BYTES], policy=policy.default)
    report = Report(kind="other")
    _scan_headers(message, report)
    report_type = str(message.get_param("report-type", "") or "").lower()
    if message.get_content_type() != "multipart/report":
        return report
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/delivery-status" and report_type == "delivery-status":
            report.kind = "bounce"
            for group in _fields(part)[1:] or _fields(part):
                action = str(group.get("Action", "")).strip().lower()
                status = _STATUS.search(str(group.get("Status", "")))
                if not action and status is None:
                    continue
                for name in ("Original-Recipient", "Final-Recipient"):
                    address = _address(group.get(name))
                    if address:
                        report.recipients.append(address)
                if status is not None:
                    report.status = report.status or status.group(0)
                if action == "failed" and status is not None and status.group(1) == "5":
                    report.hard, report.status = True, status.group(0)
        elif content_type == "message/feedback-report" and report_type == "feedback-report":
            for group in _fields(part):
                feedback = str(group.get("Feedback-Type", "")).strip().lower()
                if feedback and feedback != "not-spam":
                    report.kind = "complaint"
                for name in ("Original-Rcpt-To", "Removal-Recipient"):
                    address = _address(group.get(name))
                    if address:
                        report.recipients.append(address)
    original = _original_headers(message)
    if original is not None:
        _scan_headers(original, report)
        for _display, address in getaddresses(original.get_all("To") or []):
            if "@" in address and not address.lower().startswith("bounce+"):
                report.recipients.append(address)
    return report


def _find(session: Session, report: Report) -> tuple[Lead | None, Send | None]:
    for address in report.verp:
        send_id = mails.read_verp(session, address)
        send = session.get(Send, send_id) if send_id is not None else None
        if send is not None:
            return leads.get(session, send.lead_id), send
    for token in report.unsubscribe_tokens:
        try:
            lead_id, _purpose = rights.read_unsubscribe(session, token)
        except (TokenInvalid, TokenExpired):
            continue
        lead = leads.get(session, lead_id)
        if lead is not None:
            return lead, None
    for address in report.recipients:
        _name, plain = parseaddr(address)
        lead = leads.find_by_email(session, plain or address)
        if lead is not None:
            return lead, None
    return None, None


def _cancel_marketing(session: Session, lead: Lead) -> None:
    for purpose, marketing in _marketing(session).items():
        if marketing:
            outbox.cancel_pending(session, lead_id=lead.id, purpose=purpose)


def _marketing(session: Session) -> dict[str, bool]:
    return {p.key: p.marketing for p in consent_service.purposes(session)}


def ingest(session: Session, raw: bytes) -> Outcome:
    """Act on one inbound report (the caller commits)."""
    report = parse(raw)
    if report.kind == "other":
        return Outcome("other", "not_a_report")
    if report.kind == "bounce" and not report.hard:
        return Outcome("bounce", "soft")
    lead, send = _find(session, report)
    now = clock.now()
    if report.kind == "bounce":
        if lead is None:
            return Outcome("bounce", "unknown_lead")
        if send is not None and send.bounced_at is None:
            send.bounced_at = now
        fresh = service.suppress(session, lead, status=report.status)
        service.leave_all(session, lead.id, "bounced")
        _cancel_marketing(session, lead)
        return Outcome("bounce", "suppressed" if fresh else "already")
    if lead is None:
        return Outcome("complaint", "unknown_lead")
    if send is not None and send.complained_at is None:
        send.complained_at = now
    service.leave_all(session, lead.id, "complaint")
    purposes = [key for key, marketing in _marketing(session).items() if marketing]
    changed = consent_service.withdraw(
        session, lead.id, purposes, meta=RequestMeta(), detail="spam complaint (ARF report)"
    )
    return Outcome("complaint", "withdrawn" if changed else "already")


# --- the optional IMAP mailbox -------------------------------------------------------------


def _connect(config: ImapConfig) -> imaplib.IMAP4:
    connection: imaplib.IMAP4 = (
        imaplib.IMAP4_SSL(config.host, config.port, timeout=30)
        if config.tls
        else imaplib.IMAP4(config.host, config.port, timeout=30)
    )
    connection.login(config.username, config.password)
    connection.select(config.mailbox)
    return connection


def poll(session: Session, config: ImapConfig, *, limit: int = 200) -> dict[str, int]:
    """Ingest unseen messages of the mailbox; they are flagged \\Seen and \\Deleted (and
    expunged) only after the transaction commits, so a failure loses nothing."""
    counts: dict[str, int] = {}
    connection = _connect(config)
    done: list[bytes] = []
    try:
        _status, found = connection.uid("SEARCH", None, "UNSEEN")  # type: ignore[arg-type]
        uids = (found[0] or b"").split()[:limit]
        for uid in uids:
            _status, data = connection.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((item[1] for item in data if isinstance(item, tuple)), None)
            if not isinstance(raw, bytes):
                continue
            with session.begin_nested():
                outcome = ingest(session, raw)
            counts[outcome.action] = counts.get(outcome.action, 0) + 1
            done.append(uid)
    except BaseException:
        _logout(connection)
        raise

    def _flag(_session: Session) -> None:
        try:
            for uid in done:
                connection.uid("STORE", uid, "+FLAGS", "(\\Seen \\Deleted)")
            if done:
                connection.expunge()
        finally:
            _logout(connection)

    event.listen(session, "after_commit", _flag, once=True)
    event.listen(session, "after_rollback", lambda _s: _logout(connection), once=True)
    return counts


def _logout(connection: imaplib.IMAP4) -> None:
    with contextlib.suppress(OSError, imaplib.IMAP4.error):
        connection.logout()


def poll_job(session: Session) -> dict[str, Any]:
    config = settings_of(session).bounce_imap_url
    if config is None:
        return {}
    try:
        counts = poll(session, config)
    except (OSError, imaplib.IMAP4.error) as exc:
        log.warning("bounce mailbox %s: %s", config.host, type(exc).__name__)
        return {}
    if counts:
        log.info("bounce mailbox: %s", ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return counts
