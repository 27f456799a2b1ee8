"""Addresses are normalised once (issue 10.8): an internationalised domain is one
lead however it is typed, headers carry valid addresses, SMTPUTF8 is used only
where the relay offers it, and a relay that cannot carry UTF-8 fails the mail
for good instead of retrying it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from leadvault import addresses, leads
from leadvault.app import runtime
from leadvault.crypto import normalise_email
from leadvault.db import unit_of_work, vault_of
from leadvault.mail import FileSender, MailContent, build_message
from leadvault.models import Lead, OutboxAttempt, OutboxMessage, OutboxStatus
from leadvault.outbox import enqueue_mail
from leadvault.settings import parse_smtp_url
from tests.conftest import deliver, free_port, make_form, process, render_token


class _Recording:
    """Keeps each message with its envelope (MAIL FROM options included)."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, list[str], list[str]]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            self.received.append((envelope.content, envelope.rcpt_tos, envelope.mail_options))
        return "250 OK"


@contextlib.contextmanager
def relay(*, smtputf8: bool) -> Iterator[tuple[_Recording, int]]:
    handler = _Recording()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, enable_SMTPUTF8=smtputf8)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def test_one_canonical_form_for_storage_and_the_blind_index():
    typed = ["ada@bücher.de", "ada@xn--bcher-kva.de", "Ada@BÜCHER.DE", " ada@XN--BCHER-KVA.de\n"]
    assert {normalise_email(t) for t in typed} == {"ada@bücher.de"}
    # Unicode NFC: a decomposed ü is the same letter.
    assert normalise_email("ada@bu\u0308cher.de") == "ada@bücher.de"
    assert addresses.canonical("Ada@XN--BCHER-KVA.DE") == "Ada@bücher.de"
    assert addresses.for_transport("ada@bücher.de") == "ada@xn--bcher-kva.de"
    assert addresses.for_transport("jörg@bücher.de") == "jörg@xn--bcher-kva.de"
    assert addresses.needs_smtputf8("jörg@bücher.de")
    assert not addresses.needs_smtputf8("ada@bücher.de")
    # Text that is no address still indexes (it finds nothing) and never raises.
    assert normalise_email("  Not An Address ") == "not an address"
    with pytest.raises(addresses.InvalidAddress):
        addresses.canonical("not an address")


def test_punycode_and_unicode_domain_are_one_lead(app, client):
    form_id = make_form(app)
    for email in ("ada@xn--bcher-kva.de", "Ada@BÜCHER.de"):
        response = client.post(
            f"/f/{form_id}",
            json={
                "email": email,
                "consent": ["newsletter"],
                "render_token": render_token(app, form_id),
            },
        )
        assert response.status_code == 200, response.get_data(as_text=True)
    process(app)
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        rows = list(s.scalars(sa.select(Lead)))
        assert len(rows) == 1
        # Stored in the canonical form (the first one typed, its domain in Unicode).
        assert leads.email_of(s, rows[0]) == "ada@bücher.de"
        assert rows[0].email_index == vault_of(s).blind_index("ada@bücher.de")
        assert leads.find_by_email(s, "ADA@xn--BCHER-kva.DE") is not None


def _header_bytes(message: EmailMessage) -> bytes:
    return bytes(message).split(b"\n\n", 1)[0]


def test_headers_carry_valid_addresses():
    content = MailContent(to="ada@bücher.de", subject="Hallo", text="x", html="<p>x</p>")
    message = build_message(content, mail_from="Bücherei <news@bücher.de>")
    head = _header_bytes(message)
    assert b"To: ada@xn--bcher-kva.de" in head
    # The display name is an encoded word; the address never is.
    assert b"From: =?utf-8?q?B=C3=BCcherei?= <news@xn--bcher-kva.de>" in head
    assert b"@xn--bcher-kva.de>" in head.split(b"Message-ID: ", 1)[1].split(b"\n", 1)[0]
    # Parsed back by a strict reader, the address is what the relay gets.
    parsed = message_from_bytes(bytes(message), policy=policy.default)
    assert parsed["To"].addresses[0].addr_spec == "ada@xn--bcher-kva.de"
    assert parsed["To"].defects == ()


def test_file_sender_writes_raw_utf8_only_where_an_address_needs_it(tmp_path):
    sender = FileSender(tmp_path, echo=False)
    for to in ("ada@bücher.de", "jörg@bücher.de"):
        content = MailContent(to=to, subject="Hallo", text="x", html="<p>x</p>")
        sender.send(build_message(content, mail_from="news@example.org"))
    heads = sorted(_header_bytes_of(p.read_bytes()) for p in tmp_path.glob("*.eml"))
    to_lines = sorted(line for h in heads for line in h.split(b"\n") if line.startswith(b"To:"))
    assert to_lines == [b"To: ada@xn--bcher-kva.de", "To: jörg@xn--bcher-kva.de".encode()]


def _header_bytes_of(raw: bytes) -> bytes:
    return raw.split(b"\n\n", 1)[0]


def _queue(app: Any, to: str) -> int:
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        content = MailContent(to=to, subject="Hallo", text="x", html="<p>x</p>")
        return enqueue_mail(s, content, template="test", lead=None).id


def test_idn_domain_goes_out_in_punycode_without_smtputf8(make_app):
    with relay(smtputf8=False) as (handler, port):
        app = make_app(smtp_url=parse_smtp_url(f"smtp://127.0.0.1:{port}"))
        _queue(app, "ada@bücher.de")
        assert deliver(app) == 1
    [(raw, rcpt_tos, mail_options)] = handler.received
    assert rcpt_tos == ["ada@xn--bcher-kva.de"]
    assert "SMTPUTF8" not in mail_options
    assert raw.isascii()
    message = message_from_bytes(raw, policy=policy.default)
    assert message["To"].addresses[0].addr_spec == "ada@xn--bcher-kva.de"


def test_utf8_local_part_uses_smtputf8_where_offered(make_app):
    with relay(smtputf8=True) as (handler, port):
        app = make_app(smtp_url=parse_smtp_url(f"smtp://127.0.0.1:{port}"))
        _queue(app, "jörg@bücher.de")
        assert deliver(app) == 1
    [(raw, rcpt_tos, mail_options)] = handler.received
    assert rcpt_tos == ["jörg@xn--bcher-kva.de"]
    assert "SMTPUTF8" in mail_options
    # RFC 6532: the header holds the address in raw UTF-8, no encoded word.
    assert "\nTo: jörg@xn--bcher-kva.de".encode() in _header_bytes_of(raw).replace(b"\r", b"")


def test_relay_without_smtputf8_fails_the_mail_for_good(make_app):
    with relay(smtputf8=False) as (handler, port):
        app = make_app(smtp_url=parse_smtp_url(f"smtp://127.0.0.1:{port}"), outbox_max_attempts=50)
        outbox_id = _queue(app, "jörg@bücher.de")
        deliver(app)
    assert handler.received == []
    with runtime(app).session_factory() as s:
        row = s.get(OutboxMessage, outbox_id)
        assert row is not None
        assert row.status == OutboxStatus.FAILED
        assert row.attempts == 1
        assert "SMTPUTF8" in (row.last_error or "")
        assert "jörg" not in (row.last_error or "")
        attempts = s.scalars(sa.select(OutboxAttempt).where(OutboxAttempt.outbox_id == outbox_id))
        assert len(list(attempts)) == 1
