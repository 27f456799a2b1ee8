"""The outbox's SMTP bytes written directly (``mail.wire_message``) are the bytes
``SmtpSender.send(build_message(...))`` sends: what a lead receives is unchanged."""

from __future__ import annotations

import copy
import email.utils
import io
from email.generator import BytesGenerator
from typing import Any

import pytest

from leadvault import mail
from leadvault.mail import MailContent, build_message, envelope_sender, wire_message

MESSAGE_ID = "<1.2.3@example.com>"
UNSUBSCRIBE = {
    "List-Unsubscribe": "<https://leads.example.com/u/" + "a" * 140 + ">, <mailto:u@example.com>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    "List-Id": '"News and more" <news.example.com>',
}
LONG_WORDS = " ".join(["Ein sehr langer Betreff"] * 8)

CONTENTS = [
    MailContent(to="ada@example.com", subject="Please confirm", text="Hi\n", html="<p>Hi</p>"),
    MailContent(
        to="Ada@Example.COM",
        subject="Bitte bestätigen Sie Ihre Anfrage für „Whitepaper 2027“ \u2013 ACME GmbH",
        text="Hallo Ada,\nFrom here on, bitte bestätigen:\r\nhttps://x.example/c/abc\n.\n",
        html="<p>Hallo Ädä</p>\r\n<a href='x'>ok</a>\nFrom me\n",
        language="de",
    ),
    MailContent(
        to="Ada Lovelace <ada@bücher.de>",
        subject=LONG_WORDS,
        text="x" * 1200 + "\nshort\rcr only\n\nFrom the start",
        html="",
        headers=UNSUBSCRIBE,
    ),
    MailContent(
        to="bob@example.org",
        subject="Ünïcödé " * 20,
        text="",
        html="é" * 300 + "\n= sign and trailing space \nFrom x",
        headers={**UNSUBSCRIBE, "Return-Path": "<bounce+abc=example.org@bounces.example.com>"},
        language="fr",
    ),
]


def _sent_by_send_message(message: Any) -> tuple[str, list[str], bytes]:
    """What smtplib's send_message gives sendmail for this message (SmtpSender.send)."""
    envelope_from = envelope_sender(message)
    if envelope_from is None:
        envelope_from = email.utils.getaddresses([message["From"]])[0][1]
    recipients = [a for _n, a in email.utils.getaddresses([message["To"]])]
    out = io.BytesIO()
    BytesGenerator(out).flatten(copy.copy(message), linesep="\r\n")
    return envelope_from, recipients, out.getvalue()


@pytest.mark.parametrize("content", CONTENTS)
@pytest.mark.parametrize("mail_from", ["news@example.com", "ACME Ä Team <news@example.com>"])
@pytest.mark.parametrize("reply_to", [None, "help@example.com"])
def test_the_wire_bytes_are_the_messages_bytes(monkeypatch, content, mail_from, reply_to):
    monkeypatch.setattr(mail, "_boundary", lambda _content: "=" * 15 + "0123456789012345678" + "==")
    monkeypatch.setattr(mail, "formatdate", lambda **_: "Wed, 02 Dec 2026 11:19:41 GMT")
    message = build_message(content, mail_from=mail_from, reply_to=reply_to)
    message.replace_header("Message-ID", MESSAGE_ID)
    wire = wire_message(content, mail_from=mail_from, reply_to=reply_to, message_id=MESSAGE_ID)
    assert wire is not None
    assert (wire.envelope_from, wire.recipients, wire.data) == _sent_by_send_message(message)


@pytest.mark.parametrize(
    "content",
    [
        MailContent(to="ädä@example.com", subject="s", text="t", html="h"),  # SMTPUTF8
        MailContent(to="a@example.com", subject="s\r\nBcc: x@y", text="t", html="h"),
        MailContent(to="a@example.com", subject="s", text="t", html="h", headers={"Bcc": "x@y"}),
        MailContent(
            to="a@example.com", subject="s", text="t", html="h", headers={"List-Id": "Lïst <l.x>"}
        ),
    ],
)
def test_other_messages_take_the_message_path(content):
    assert wire_message(content, mail_from="news@example.com", message_id=MESSAGE_ID) is None


ADDRESSES = [
    "ada@example.com",
    "Ada.Lovelace+news@mail.example.co.uk",
    "o'brien@example.ie",
    "a..b@example.com",
    ".a@example.com",
    "a@example",
    "a@-example.com",
    "a@example.123",
    "x" * 70 + "@example.com",
    "a@" + "b" * 70 + ".com",
    "a@xn--bcher-kva.de",
    "a@xn--zz.de",
    "Ada@Example.com",
    "ädä@example.com",
    "a@bücher.de",
    "Ada <ada@example.com>",
    " ada@example.com ",
    "ada@example.com.",
    "not an address",
    "a@b@example.com",
    '"quoted local"@example.com',
    "a!#$%&*+/=?^_`{|}~-@example.com",
]


@pytest.mark.parametrize("value", ADDRESSES)
def test_a_plain_address_is_its_own_header_value_and_recipient(value):
    from email.utils import formataddr, parseaddr

    from leadvault import addresses

    name, address = parseaddr(value)
    if not address:
        slow = value
    else:
        transport = addresses.for_transport(address)
        slow = formataddr((name, transport)) if name else transport
    assert addresses.header_value(value) == slow
    if addresses.is_plain(value):
        assert slow == value
        assert [a for _n, a in email.utils.getaddresses([value])] == [value]
