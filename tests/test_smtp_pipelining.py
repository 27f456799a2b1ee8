"""``SmtpSender.send_wires`` pipelines (RFC 2920) when the relay offers it: one write
carries a message's content with the next one's MAIL, RCPT and DATA. Each mail's
outcome, and what the relay receives, are those of sending the mails one by one.

The relay is a real aiosmtpd on loopback: it reads the commands in order from its
stream, so it takes pipelined input as it is; here it says PIPELINING in its EHLO
reply when asked to, and refuses by address or content.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from leadvault.mail import Wire
from leadvault.models import OutboxStatus
from leadvault.settings import parse_smtp_url
from leadvault.smtp import DeliveryError, SmtpSender
from tests.conftest import deliver, free_port
from tests.test_outbox import enqueue, outbox_rows


class _Relay:
    """Refuses a sender or recipient by its local part (``refused``, ``later``,
    ``nobody``, ``busy``, ``closing``: 421) and a content by a word in it (``SPAM``,
    ``TEMP``, ``CLOSE``: 421); drops the connection at the first DATA of a content with
    ``DROP`` in it. (A 421 is the client's to close on: aiosmtpd does not.)"""

    def __init__(self, *, pipelining: bool) -> None:
        self.pipelining = pipelining
        self.received: list[tuple[str, list[str], list[str], bytes]] = []
        self.pipelined = 0  # MAILs whose next command had come before the MAIL's reply
        self.dropped = 0
        self.rcpts = 0
        self.refuse_rcpt_number: int | None = None

    async def handle_EHLO(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            return [*responses[:-1], "250-PIPELINING", responses[-1]]
        return responses

    async def handle_MAIL(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if server._reader._buffer:  # the RCPT is here already: sent in one group
            self.pipelined += 1
        if address.startswith("refused"):
            return f"550 5.7.1 sender <{address}> refused"
        if address.startswith("later"):
            return "451 4.3.0 try again later"
        if address.startswith("closing"):
            return "421 4.3.2 closing"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.rcpts += 1
        if address.startswith("nobody") or self.rcpts == self.refuse_rcpt_number:
            return f"550 5.1.1 no such user <{address}>"
        if address.startswith("busy"):
            return "450 4.2.1 mailbox busy"
        if address.startswith("closing"):
            return "421 4.3.2 closing"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        content = envelope.original_content
        if b"DROP" in content and not self.dropped:
            self.dropped += 1
            server.transport.close()
            return "451 gone"  # never arrives
        if b"SPAM" in content:
            return f"554 5.7.1 message for <{envelope.rcpt_tos[0]}> rejected as spam"
        if b"TEMP" in content:
            return "451 4.3.0 content deferred"
        if b"CLOSE" in content:
            return "421 4.3.2 closing"
        self.received.append(
            (envelope.mail_from, list(envelope.rcpt_tos), list(envelope.mail_options), content)
        )
        return "250 OK"


@contextlib.contextmanager
def _relay(*, pipelining: bool) -> Iterator[tuple[_Relay, SmtpSender]]:
    relay = _Relay(pipelining=pipelining)
    port = free_port()
    controller = Controller(relay, hostname="127.0.0.1", port=port)
    controller.start()
    sender = SmtpSender(parse_smtp_url(f"smtp://127.0.0.1:{port}"), timeout=10)
    try:
        yield relay, sender
    finally:
        sender.close()
        controller.stop()


def _wire(sender: str, *recipients: str, body: str = "Hello.") -> Wire:
    data = f"From: <{sender}>\r\nSubject: test\r\n\r\n{body}\r\n".encode()
    return Wire(envelope_from=sender, recipients=list(recipients), data=data)


WIRES = [
    _wire("a@example.com", "one@example.org"),
    _wire("a@example.com", "nobody@example.org"),
    _wire("a@example.com", "two@example.org", body=".a leading dot\r\n..two\r\n."),
    _wire("refused@example.com", "three@example.org"),
    _wire("a@example.com", "busy@example.org"),
    _wire("a@example.com", "four@example.org", body="SPAM"),
    _wire("a@example.com", "five@example.org", "nobody@example.org"),  # one of two refused
    _wire("later@example.com", "six@example.org"),
    _wire("a@example.com", "seven@example.org", body="TEMP"),
    _wire("a@example.com", '"a b"@example.org'),  # not bare: smtplib's own commands
    _wire("closing@example.com", "eleven@example.org"),
    _wire("a@example.com", "twelve@example.org", body="CLOSE"),
    _wire("a@example.com", "thirteen@example.org"),
    _wire("a@example.com", "fourteen@example.org", "closing@example.org", "x@example.org"),
    Wire("a@example.com", ["eight@example.org"], b"Subject: no line end\r\n\r\nlast"),
    _wire("a@example.com", "busy@example.org", "nine@example.org"),
    _wire("a@example.com", "ten@example.org"),
]


def _described(outcome: DeliveryError | None) -> tuple[str, bool] | None:
    return None if outcome is None else (str(outcome), outcome.permanent)


def _one_by_one(sender: SmtpSender, wires: list[Wire]) -> list[tuple[str, bool] | None]:
    outcomes = []
    for wire in wires:
        try:
            sender.send_wire(wire)
            outcomes.append(None)
        except DeliveryError as exc:
            outcomes.append(_described(exc))
    return outcomes


def test_pipelined_mails_have_the_outcomes_and_bytes_of_mails_sent_one_by_one():
    with _relay(pipelining=False) as (plain, sender):
        expected = _one_by_one(sender, WIRES)
        # Without PIPELINING on offer, send_wires sends them one by one.
        assert [_described(o) for o in sender.send_wires(iter(WIRES))] == expected
    with _relay(pipelining=True) as (relay, sender):
        outcomes = [_described(o) for o in sender.send_wires(iter(WIRES))]
    assert outcomes == expected
    assert [o is None for o in outcomes].count(True) == 8
    assert plain.received == relay.received * 2  # the same commands' options and bytes
    assert relay.pipelined >= 8  # every MAIL after the first one sent with its RCPT
    assert plain.pipelined == 0


def test_a_connection_dropped_in_a_pipeline_sends_what_was_in_flight_again():
    wires = [_wire("a@example.com", f"r{n}@example.org", body=f"mail {n}") for n in range(6)]
    wires[3] = _wire("a@example.com", "r3@example.org", body="mail 3 DROP")
    with _relay(pipelining=True) as (relay, sender):
        assert list(sender.send_wires(iter(wires))) == [None] * 6
    assert relay.dropped == 1
    assert sorted(content for *_e, content in relay.received) == sorted(w.data for w in wires)


def test_a_pipeline_given_up_with_a_data_open_leaves_the_next_mail_intact():
    wires = [_wire("a@example.com", f"r{n}@example.org", body=f"mail {n}") for n in range(3)]
    with _relay(pipelining=True) as (relay, sender):
        outcomes = sender.send_wires(iter(wires))
        assert next(outcomes) is None  # mail 1's DATA is open now, its content not sent
        outcomes.close()
        sender.send_wire(wires[2])
    assert [content for _f, _t, _o, content in relay.received] == [wires[0].data, wires[2].data]


@pytest.mark.committing
def test_the_worker_pipelines_a_batch_and_records_each_outcome(make_app):
    with _relay(pipelining=True) as (relay, sender):
        relay.refuse_rcpt_number = 3
        app = make_app(smtp_url=parse_smtp_url(f"smtp://127.0.0.1:{sender.config.port}"))
        queued = enqueue(app, 6, with_lead=True)
        assert deliver(app) == 6
        assert deliver(app) == 0
    assert relay.pipelined >= 4
    received = [
        str(message_from_bytes(content)["Message-ID"]).strip() for *_e, content in relay.received
    ]
    rows = {row.id: row for row in outbox_rows(app)}
    sent = [queued[i] for i, row in rows.items() if row.status == OutboxStatus.SENT]
    assert sorted(received) == sorted(sent) and len(sent) == 5
    [failed] = [row for row in rows.values() if row.status == OutboxStatus.FAILED]
    assert failed.attempts == 1 and failed.last_error == "recipient refused (550)"
