"""MAIL FROM and RCPT TO skip smtplib's address parsing for bare addresses
(``leadvault.smtp``): the commands a relay receives are the same as smtplib's,
byte for byte, for every kind of address (SMTPUTF8 included)."""

from __future__ import annotations

import logging
import random
import re
import smtplib
import string
from email.message import EmailMessage

import pytest

from leadvault import smtp
from leadvault.mail import Wire
from leadvault.settings import parse_smtp_url
from leadvault.smtp import SmtpSender
from tests.test_mail_wire import ADDRESSES

_ATOM_CHARS = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"


def _random_addresses(count: int) -> list[str]:
    """Dot-atoms and domains of every character is_bare allows, and some it does not."""
    rng = random.Random(13)
    found = []
    for _ in range(count):
        local = ".".join(
            "".join(rng.choice(_ATOM_CHARS + '."() <>') for _ in range(rng.randint(1, 8)))
            for _ in range(rng.randint(1, 3))
        )
        domain = ".".join(
            "".join(rng.choice(string.ascii_letters + string.digits + "-") for _ in range(3))
            for _ in range(rng.randint(1, 3))
        )
        found.append(f"{local}@{domain}")
    return found


def test_a_plain_address_is_what_quoteaddr_makes_of_it():
    values = [*ADDRESSES, *_random_addresses(3000)]
    plain = [value for value in values if smtp.is_bare(value)]
    assert 100 < len(plain) < len(values) - 100  # both ways are taken
    assert [value for value in plain if smtplib.quoteaddr(value) != f"<{value}>"] == []


_COMMAND = re.compile(r">> (b(['\"])(?:MAIL|RCPT) .*\2)$", re.IGNORECASE)


def _commands(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The MAIL and RCPT lines aiosmtpd received, as it logs them."""
    found = [_COMMAND.search(record.getMessage()) for record in caplog.records]
    caplog.clear()
    return [match[1] for match in found if match]


def _message(to: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "news@example.com"
    message["To"] = to
    message["Subject"] = "s"
    message.set_content("t")
    return message


ENVELOPES = [
    ("news@example.com", ["ada@example.com"]),
    ("bounce+a=b.example@bounces.example.com", ["Ada.L+x@mail.example.co.uk", "o'b@example.ie"]),
    ("News <news@example.com>", ["a..b@example.com", '"quoted local"@example.com']),
    ("news@example.com", ["Ada <ada@example.com>", "Ada@Example.COM"]),
]


def test_the_relay_receives_smtplibs_commands(smtp_server, caplog):
    caplog.set_level(logging.INFO, logger="mail.log")
    config = parse_smtp_url(f"smtp://127.0.0.1:{smtp_server.port}")
    ours = SmtpSender(config)
    stdlib = smtplib.SMTP("127.0.0.1", smtp_server.port)
    try:
        for sender, recipients in ENVELOPES:
            data = b"Subject: s\r\n\r\nt\r\n"
            ours.send_wire(Wire(sender, recipients, data))
            mine = _commands(caplog)
            stdlib.sendmail(sender, recipients, data)
            assert mine == _commands(caplog)
            assert len(mine) == 1 + len(recipients)
        # SMTPUTF8 (a local part that is not ASCII): smtplib's own path, options and all.
        for to in ["ädä@example.com", "ada@example.com"]:
            ours.send(_message(to))
            mine = _commands(caplog)
            stdlib.send_message(_message(to))
            assert mine == _commands(caplog)
            assert ("SMTPUTF8" in mine[0]) == (not to.isascii())
    finally:
        ours.close()
        stdlib.quit()
    assert len(smtp_server.messages) == 2 * (len(ENVELOPES) + 2)


def _smtplib_data_lines(data: bytes) -> bytes:
    quoted = smtplib._quote_periods(data)
    return (quoted if quoted[-2:] == b"\r\n" else quoted + b"\r\n") + b".\r\n"


def test_the_data_lines_are_smtplibs():
    rng = random.Random(5)
    edges = [b"", b".", b".\r\n", b"a\r\n.b", b"a\n.b", b"a\r.b", b"..\r\n..", b"a\r\n", b"a"]
    texts = edges + [
        bytes(rng.choice(b".\r\na ") for _ in range(rng.randint(0, 40))) for _ in range(3000)
    ]
    for data in texts:
        assert smtp._data_lines(data) == _smtplib_data_lines(data), data


def test_a_relay_receives_dotted_lines_as_smtplib_sends_them(smtp_server):
    config = parse_smtp_url(f"smtp://127.0.0.1:{smtp_server.port}")
    ours = SmtpSender(config)
    stdlib = smtplib.SMTP("127.0.0.1", smtp_server.port)
    data = b"Subject: s\r\n\r\n.one\r\ntwo\r\n..three\r\n."
    try:
        ours.send_wire(Wire("a@example.com", ["b@example.com"], data))
        stdlib.sendmail("a@example.com", ["b@example.com"], data)
    finally:
        ours.close()
        stdlib.quit()
    mine, theirs = smtp_server.wait_for(2)
    assert mine.as_bytes() == theirs.as_bytes()
    assert mine.get_payload() == ".one\r\ntwo\r\n..three\r\n.\r\n"  # dots as written
