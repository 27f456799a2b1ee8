"""SMTP delivery: one connection carrying many messages, and what its errors mean.

:class:`SmtpSender` sends either a :class:`~email.message.Message` (``send``) or a
message already written for the wire (``send_wire``, ``mail.wire_message``).
Its connection skips smtplib's ``quoteaddr`` for a bare address (:func:`is_bare`:
what stored addresses mostly are): ``quoteaddr`` parses every
envelope address again (``email.utils.parseaddr``, about a sixth of a mail's
CPU) only to give back ``<address>``. Every other address takes smtplib's own
path, so the commands on the wire are the same either way.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import ssl
from collections.abc import Callable, Sequence
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
            except smtplib.SMTPNotSupportedError:
                # The address needs SMTPUTF8 and the relay does not offer it: it never
                # will for this mail, so retrying cannot help.
                raise DeliveryError(
                    "the relay does not offer SMTPUTF8, which this address needs", permanent=True
                ) from None
            except smtplib.SMTPRecipientsRefused as exc:
                codes = sorted({code for code, _msg in exc.recipients.values()})
                raise DeliveryError(
                    f"recipient refused ({', '.join(map(str, codes))})",
                    permanent=all(500 <= c < 600 for c in codes),
                ) from None
            except smtplib.SMTPResponseException as exc:
                detail = redact(exc.smtp_error.decode("utf-8", "replace"))[:200]
                raise DeliveryError(
                    f"SMTP {exc.smtp_code}: {detail}", permanent=500 <= exc.smtp_code < 600
                ) from None
            except (OSError, smtplib.SMTPException) as exc:
                self._connection = None
                raise DeliveryError(f"SMTP error: {type(exc).__name__}") from None
            return

    def check(self) -> None:
        """Open and close a connection; raises DeliveryError when the server does not answer."""
        connection = self._connect()
        connection.quit()

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._connection.quit()
            self._connection = None
