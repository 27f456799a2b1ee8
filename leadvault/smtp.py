"""SMTP delivery: one connection carrying many messages, and what its errors mean.

:class:`SmtpSender` sends either a :class:`~email.message.Message` (``send``) or a
message already written for the wire (``send_wire``, ``mail.wire_message``).
Its connection skips smtplib's ``quoteaddr`` for a bare address (:func:`is_bare`:
what stored addresses mostly are): ``quoteaddr`` parses every
envelope address again (``email.utils.parseaddr``, about a sixth of a mail's
CPU) only to give back ``<address>``. Every other address takes smtplib's own
path, so the commands on the wire are the same either way.

``send_wires`` sends many: when the relay offers PIPELINING (RFC 2920), one
write carries a message's content and the next message's MAIL, RCPT and DATA,
and one wait takes their replies (a round trip per mail instead of four; under
load each wait is a turn for the relay's process and for this thread's GIL).
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import ssl
from collections.abc import Callable, Iterable, Iterator, Sequence
from email.message import Message
from email.utils import parseaddr
from typing import TYPE_CHECKING

from leadvault import addresses
from leadvault.settings import SmtpConfig

if TYPE_CHECKING:
    from leadvault.mail import Wire


class DeliveryError(Exception):
    """Delivery failed; ``permanent`` is True when retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def envelope_sender(message: Message) -> str | None:
    """A ``Return-Path`` header in the content (a VERP address) becomes the envelope
    sender and leaves the message: the receiving server writes its own."""
    value = message["Return-Path"]
    if value is None:
        return None
    del message["Return-Path"]
    _name, address = parseaddr(str(value))
    return addresses.for_transport(address) if address else None


_ADDRESS = re.compile(r"[^\s<>\"'@]+@[^\s<>\"'@]+")


def redact(text: str) -> str:
    """Remove addresses from server replies before they reach a log or a table."""
    return _ADDRESS.sub("<address>", text)


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_BARE = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*\Z")


def is_bare(address: str) -> bool:
    """An ASCII dot-atom at a domain of letters, digits and hyphens (``localhost`` too):
    smtplib's ``quoteaddr`` gives it back as ``<address>``."""
    return _BARE.match(address) is not None


class _Connection(smtplib.SMTP):
    """smtplib's SMTP, but MAIL FROM and RCPT TO write a bare address as ``<address>``
    at once: what ``quoteaddr`` gives for it (tests/test_smtp_envelope.py), without
    parsing it. Anything else (a display name, SMTPUTF8) goes to smtplib as before."""

    def mail(self, sender: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        if not is_bare(sender) or any(o.lower() == "smtputf8" for o in options):
            return super().mail(sender, options)
        optionlist = " " + " ".join(options) if options and self.does_esmtp else ""
        self.putcmd("mail", f"FROM:<{sender}>{optionlist}")
        return self.getreply()

    def rcpt(self, recip: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        if not is_bare(recip):
            return super().rcpt(recip, options)
        optionlist = " " + " ".join(options) if options and self.does_esmtp else ""
        self.putcmd("rcpt", f"TO:<{recip}>{optionlist}")
        return self.getreply()

    def data(self, msg: str | bytes) -> tuple[int, bytes]:
        """smtplib's ``data`` with the message's lines written by :func:`_data_lines`
        (the same bytes; smtplib runs its dot-doubling regex over every message)."""
        if not isinstance(msg, bytes):
            return super().data(msg)
        self.putcmd("data")
        code, reply = self.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        self.send(_data_lines(msg))
        return self.getreply()


def _data_lines(data: bytes) -> bytes:
    """What smtplib's ``data`` writes after the 354: leading dots doubled, CRLF . CRLF."""
    # A regular expression for ^ tries every byte in Python's engine (~20 µs a mail);
    # a mail's lines seldom start with a dot, and a substring search says so at once.
    quoted = _LEADING_DOT.sub(b"..", data) if data[:1] == b"." or b"\n." in data else data
    if quoted[-2:] != b"\r\n":
        quoted += b"\r\n"
    return quoted + b".\r\n"


_LEADING_DOT = re.compile(rb"(?m)^\.")


class _TlsConnection(_Connection, smtplib.SMTP_SSL):
    """The same over implicit TLS (``smtps://``)."""


class SmtpSender:
    """Delivers over one SMTP connection, reopened when the server drops it."""

    def __init__(self, config: SmtpConfig, *, timeout: float = 20.0) -> None:
        self.config = config
        self.timeout = timeout
        self._connection: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        cfg = self.config
        try:
            if cfg.security == "tls":
                connection: smtplib.SMTP = _TlsConnection(
                    cfg.host, cfg.port, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                connection = _Connection(cfg.host, cfg.port, timeout=self.timeout)
                if cfg.security == "starttls":
                    connection.starttls(context=ssl.create_default_context())
            if cfg.username:
                connection.login(cfg.username, cfg.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"SMTP login refused ({exc.smtp_code})") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"SMTP server unreachable: {type(exc).__name__}") from None
        return connection

    def send(self, message: Message) -> None:
        envelope_from = envelope_sender(message)
        self._deliver(lambda connection: connection.send_message(message, from_addr=envelope_from))

    def send_wire(self, wire: Wire) -> None:
        """A message already written (:func:`wire_message`): the bytes go out as they are."""
        self._deliver(
            lambda connection: connection.sendmail(wire.envelope_from, wire.recipients, wire.data)
        )

    def _deliver(self, send: Callable[[smtplib.SMTP], object]) -> None:
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = self._connect()
            try:
                send(self._connection)
            except smtplib.SMTPServerDisconnected:
                self._connection = None
                if attempt == 2:
                    raise DeliveryError("SMTP server closed the connection") from None
                continue
            except (OSError, smtplib.SMTPException) as exc:
                raise self._error(exc) from None
            return

    def _error(self, exc: OSError | smtplib.SMTPException) -> DeliveryError:
        """What a failed send means for the mail (not a dropped connection: that is sent again)."""
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            # The address needs SMTPUTF8 and the relay does not offer it: it never
            # will for this mail, so retrying cannot help.
            return DeliveryError(
                "the relay does not offer SMTPUTF8, which this address needs", permanent=True
            )
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            codes = sorted({code for code, _msg in exc.recipients.values()})
            return DeliveryError(
                f"recipient refused ({', '.join(map(str, codes))})",
                permanent=all(500 <= c < 600 for c in codes),
            )
        if isinstance(exc, smtplib.SMTPResponseException):
            detail = redact(exc.smtp_error.decode("utf-8", "replace"))[:200]
            return DeliveryError(
                f"SMTP {exc.smtp_code}: {detail}", permanent=500 <= exc.smtp_code < 600
            )
        self._connection = None
        return DeliveryError(f"SMTP error: {type(exc).__name__}")

    def send_wires(self, wires: Iterable[Wire]) -> Iterator[DeliveryError | None]:
        """Each wire's outcome, in order: what ``send_wire`` gives for it (None: sent).
        Pipelined when the relay offers it and the addresses are bare; a mail is then
        sent as its replies are read, with the next one's commands (so a wire is taken
        from ``wires`` before the previous outcome is given)."""
        waiting: Wire | None = None  # its DATA was accepted; its content goes next
        try:
            for wire in wires:
                connection = self._pipelining(wire)
                if isinstance(connection, DeliveryError):
                    outcomes: list[DeliveryError | None] = [connection]
                elif connection is None:
                    outcomes = [] if waiting is None else [self._finish(waiting)]
                    waiting = None
                    outcomes.append(self._send_one(wire))
                else:
                    outcomes, waiting = self._pipelined(connection, waiting, wire)
                yield from outcomes
            if waiting is not None:
                last, waiting = waiting, None
                yield self._finish(last)
        finally:
            if waiting is not None and self._connection is not None:
                # Given up with a DATA open: the relay must not take what comes next
                # as its content. Closing the socket abandons that transaction.
                self._connection.close()
                self._connection = None

    def _send_one(self, wire: Wire) -> DeliveryError | None:
        try:
            self.send_wire(wire)
        except DeliveryError as exc:
            return exc
        return None

    def _pipelining(self, wire: Wire) -> smtplib.SMTP | DeliveryError | None:
        """The connection if the wire can be pipelined on it: the relay offers
        PIPELINING, and the addresses are bare (written as ``_Connection`` writes them)."""
        if not (is_bare(wire.envelope_from) and all(map(is_bare, wire.recipients))):
            return None
        try:
            if self._connection is None:
                self._connection = self._connect()
            self._connection.ehlo_or_helo_if_needed()
        except DeliveryError as exc:
            return exc
        except smtplib.SMTPServerDisconnected:
            self._connection = None
            return None  # send_wire connects again
        except (OSError, smtplib.SMTPException) as exc:
            return self._error(exc)
        return self._connection if self._connection.has_extn("pipelining") else None

    def _pipelined(
        self, connection: smtplib.SMTP, waiting: Wire | None, wire: Wire
    ) -> tuple[list[DeliveryError | None], Wire | None]:
        """Send the waiting wire's content with this wire's MAIL, RCPT and DATA, read the
        replies; the waiting wire's outcome, and this wire if its content may follow."""
        size = (
            f" size={len(wire.data)}"
            if connection.does_esmtp and connection.has_extn("size")
            else ""
        )
        commands = [f"mail FROM:<{wire.envelope_from}>{size}"]
        commands += [f"rcpt TO:<{recipient}>" for recipient in wire.recipients]
        commands.append("data")
        group = "".join(f"{command}\r\n" for command in commands).encode("ascii")
        outcomes: list[DeliveryError | None] = []
        try:
            connection.send(group if waiting is None else _data_lines(waiting.data) + group)
            if waiting is not None:
                outcomes.append(self._data_outcome(connection, *connection.getreply()))
                waiting = None
                if self._connection is None:  # a 421: the relay closed it before this wire
                    return [*outcomes, self._send_one(wire)], None
            error = self._replies(connection, wire)
            if error is None:
                return outcomes, wire
            outcomes.append(error)
        except smtplib.SMTPServerDisconnected:
            # What was in flight goes again, one by one, on a new connection: at least once.
            self._connection = None
            outcomes += [self._send_one(sent) for sent in (waiting, wire) if sent is not None]
        except (OSError, smtplib.SMTPException) as exc:
            outcomes += [self._error(exc) for sent in (waiting, wire) if sent is not None]
        return outcomes, None

    def _replies(self, connection: smtplib.SMTP, wire: Wire) -> DeliveryError | None:
        """Read the replies to the wire's MAIL, RCPT and DATA: None when its content may
        follow (354), else the error sendmail raises first for them. A 421 ends the
        reading: the relay closes the connection (and so does smtplib)."""
        replies = []
        for _command in range(len(wire.recipients) + 2):
            replies.append(connection.getreply())
            if replies[-1][0] == 421:
                break
        mail, *rcpts = replies
        data = rcpts.pop() if len(rcpts) > len(wire.recipients) else None
        refused = {
            recipient: reply
            for recipient, reply in zip(wire.recipients, rcpts, strict=False)
            if reply[0] not in (250, 251)
        }
        accepted = mail[0] == 250 and len(refused) < len(wire.recipients)
        if accepted and data is not None and data[0] == 354:
            return None
        if mail[0] != 250:
            error: smtplib.SMTPException = smtplib.SMTPSenderRefused(*mail, wire.envelope_from)
        elif data is None or len(refused) == len(wire.recipients):
            error = smtplib.SMTPRecipientsRefused(refused)
        else:
            error = smtplib.SMTPDataError(*data)
        if replies[-1][0] == 421:
            connection.close()
            self._connection = None
            return self._error(error)
        if data is not None and data[0] == 354:
            # DATA taken without a valid MAIL or RCPT: an empty content ends it.
            connection.send(b".\r\n")
            connection.getreply()
        self._reset(connection)
        return self._error(error)

    def _finish(self, waiting: Wire) -> DeliveryError | None:
        """Send the waiting wire's content and read its outcome."""
        connection = self._connection
        if connection is None:
            return self._send_one(waiting)
        try:
            connection.send(_data_lines(waiting.data))
            return self._data_outcome(connection, *connection.getreply())
        except smtplib.SMTPServerDisconnected:
            self._connection = None
            return self._send_one(waiting)
        except (OSError, smtplib.SMTPException) as exc:
            return self._error(exc)

    def _data_outcome(
        self, connection: smtplib.SMTP, code: int, message: bytes
    ) -> DeliveryError | None:
        """The reply to a content's end: its transaction is over either way."""
        if code == 250:
            return None
        if code == 421:
            connection.close()
            self._connection = None
        return self._error(smtplib.SMTPDataError(code, message))

    @staticmethod
    def _reset(connection: smtplib.SMTP) -> None:
        with contextlib.suppress(smtplib.SMTPServerDisconnected):
            connection.rset()

    def check(self) -> None:
        """Open and close a connection; raises DeliveryError when the server does not answer."""
        connection = self._connect()
        connection.quit()

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._connection.quit()
            self._connection = None
