"""Building mails and handing them to a transport (SMTP or .eml files).

The outbox stores a rendered :class:`MailContent`; the worker turns it into a
MIME message with a Message-ID and a plain text and an HTML part and passes it
to a :class:`Sender`.
"""

from __future__ import annotations

import dataclasses
import email.charset
import email.utils
import functools
import os
import re
import secrets
from email.header import Header, decode_header, make_header
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import Compat32
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import Any, Protocol

import click

from leadvault import addresses, qp
from leadvault.settings import Settings
from leadvault.smtp import DeliveryError, SmtpSender, envelope_sender  # noqa: F401 (callers' import)
from leadvault.untrusted import for_terminal


@dataclasses.dataclass(frozen=True)
class MailContent:
    to: str
    subject: str
    text: str
    html: str
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    language: str = "en"

    def to_json(self) -> dict[str, Any]:
        # dataclasses.asdict's value, built directly (it deep-copies every field: a tenth
        # of queueing an opt-in mail).
        return {
            "to": self.to,
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "headers": dict(self.headers),
            "language": self.language,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MailContent:
        return cls(**data)


class Sender(Protocol):
    def send(self, message: Message) -> None: ...

    def close(self) -> None: ...


def build_message(content: MailContent, *, mail_from: str, reply_to: str | None = None) -> Message:
    """The MIME message: a text and an HTML part, a Message-ID, addresses in transport form.

    Built lean (``compat32`` parts, headers encoded once, about five times cheaper than
    the ``email`` package's default policy); a mail whose address needs SMTPUTF8, or a
    header that is not ASCII beyond the subject and display name, gets the default
    policy's message instead.
    """
    name, from_value = _sender(mail_from)
    to = addresses.header_value(content.to)
    if not (
        to.isascii()
        and from_value.isascii()
        and all(value.isascii() for value in content.headers.values())
    ) or _LINE_BREAK.search("".join((content.to, content.subject, *content.headers.values()))):
        # The default policy writes SMTPUTF8 headers, and refuses a line break in a
        # header (it would inject headers), as it always did.
        return _full_message(content, mail_from=mail_from, reply_to=reply_to)
    message = MIMEMultipart("alternative", boundary=_boundary(content), policy=_LEAN)
    message["Message-ID"] = make_msgid(domain=addresses.domain_of(mail_from))
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["From"] = formataddr((name, from_value), charset=_UTF8) if name else from_value
    message["To"] = to
    message["Subject"] = _header(content.subject)
    message["Auto-Submitted"] = "auto-generated"
    if reply_to:  # LEADVAULT_MAIL_REPLY_TO
        message["Reply-To"] = _settings_address(reply_to)
    for header, value in content.headers.items():
        message[header] = value
    message["Content-Language"] = content.language
    message.attach(_text_part(content.text, "plain"))
    message.attach(_text_part(content.html, "html"))
    return message


def _boundary(content: MailContent) -> str:
    """A MIME boundary in the stdlib's form, chosen here: the generator would otherwise
    compile a regular expression for every message to look for its random one in the
    parts (a third of the cost of writing a mail). Random, and not in the text."""
    while True:
        boundary = f"{'=' * 15}{secrets.randbelow(10**19):019d}=="
        if boundary not in content.text and boundary not in content.html:
            return boundary


@functools.lru_cache(maxsize=16)
def _sender(mail_from: str) -> tuple[str, str]:
    """LEADVAULT_MAIL_FROM's display name and address in transport form (a setting:
    worked out once, not for every mail)."""
    name, address = parseaddr(mail_from)
    return name, addresses.header_value(address)


@functools.lru_cache(maxsize=16)
def _settings_address(value: str) -> str:
    return addresses.header_value(value)


_LINE_BREAK = re.compile(r"[\r\n]")


class _LeanPolicy(Compat32):
    """``compat32`` (cheap), except that an ASCII header value is folded as the default
    policy folds it: a long token (a List-Unsubscribe URL) stays on its line."""

    def _one_line(self, name: str, value: object) -> str | None:
        if not isinstance(value, str) or not value.isascii() or _LINE_BREAK.search(value):
            return None
        line = f"{name}: {value}"
        if len(line) > 998 or (len(line) > 78 and " " in value):
            return None  # folded at spaces, as usual
        return line + self.linesep

    def fold(self, name: str, value: Any) -> str:
        return self._one_line(name, value) or super().fold(name, value)

    def fold_binary(self, name: str, value: Any) -> bytes:
        line = self._one_line(name, value)
        return line.encode("ascii") if line else super().fold_binary(name, value)


_LEAN = _LeanPolicy()
# How the generator writes the lean policy's headers for SMTP (send_message: CRLF).
_WIRE_POLICY = _LEAN.clone(linesep="\r\n")
# UTF-8 as quoted-printable, in headers too (readable, and what the default policy writes).
_UTF8 = email.charset.Charset("utf-8")
_UTF8.header_encoding = email.charset.QP
_UTF8.body_encoding = email.charset.QP


def _header(value: str) -> str | Header:
    return value if value.isascii() else Header(value, _UTF8)


def _text_part(text: str, subtype: str) -> MIMEText:
    # ASCII as 7bit (no encoding at all), anything else quoted-printable.
    if text.isascii() and max(map(len, text.splitlines()), default=0) <= 998:
        return MIMEText(text, subtype, "us-ascii", policy=_LEAN)
    return MIMEText(text, subtype, _UTF8, policy=_LEAN)


def _full_message(
    content: MailContent, *, mail_from: str, reply_to: str | None = None
) -> EmailMessage:
    message = EmailMessage()
    message["Message-ID"] = make_msgid(domain=addresses.domain_of(mail_from))
    message["Date"] = formatdate(localtime=False, usegmt=True)
    # Addresses in transport form: punycode domains, so the headers are valid for
    # every relay (a non-ASCII local part needs SMTPUTF8, see SmtpSender.send).
    message["From"] = addresses.header_value(mail_from)
    message["To"] = addresses.header_value(content.to)
    message["Subject"] = content.subject
    message["Auto-Submitted"] = "auto-generated"
    if reply_to:
        message["Reply-To"] = addresses.header_value(reply_to)
    for name, value in content.headers.items():
        message[name] = value
    message.set_content(content.text)
    message.add_alternative(content.html, subtype="html")
    # After set_content, which clears every Content-* header.
    message["Content-Language"] = content.language
    return message


@dataclasses.dataclass(frozen=True)
class Wire:
    """A message as SMTP carries it: envelope and bytes (what ``send_message`` would send)."""

    envelope_from: str
    recipients: list[str]
    data: bytes


# The headers a lean message may carry beyond its own (what the outbox's mails carry);
# anything else (a second Subject, a Bcc) takes the Message path, as before.
_WIRE_HEADERS = frozenset({"List-Unsubscribe", "List-Unsubscribe-Post", "List-Id", "Return-Path"})


def wire_message(
    content: MailContent,
    *,
    mail_from: str,
    message_id: str,
    reply_to: str | None = None,
    qp_lines: dict[str, str] | None = None,
) -> Wire | None:
    """The bytes ``SmtpSender.send(build_message(...))`` would send for a lean message,
    written directly: no Message object, no generator, no parsing the addresses back
    out of the headers (together about two thirds of the CPU of a mail). Byte for byte
    the same (tests/test_mail_wire.py). None where ``build_message`` would take the
    default policy, or the content has headers of other names: send a Message then.
    ``qp_lines``: quoted-printable lines shared by the caller's messages (``qp.body_encode``)."""
    name, from_value = _sender(mail_from)
    to = addresses.header_value(content.to)
    if (
        not (to.isascii() and from_value.isascii())
        or not _WIRE_HEADERS.issuperset(content.headers)
        or not all(value.isascii() for value in content.headers.values())
        or _LINE_BREAK.search("".join((content.to, content.subject, *content.headers.values())))
    ):
        return None
    envelope_from = _envelope_address(from_value)
    return_path = content.headers.get("Return-Path")
    if return_path is not None:
        _name, address = parseaddr(return_path)
        envelope_from = addresses.for_transport(address) if address else envelope_from
        if not envelope_from.isascii():
            return None  # SMTPUTF8: the Message path decides
    recipients = (
        [to]
        if addresses.is_plain(to)
        else [address for _name, address in email.utils.getaddresses([to])]
    )
    boundary = _boundary(content)
    fold = _WIRE_POLICY.fold_binary
    lines = [
        b'Content-Type: multipart/alternative;\r\n boundary="%s"\r\nMIME-Version: 1.0\r\n'
        % boundary.encode("ascii"),
        fold("Message-ID", message_id),
        fold("Date", formatdate(localtime=False, usegmt=True)),
        _from_line(name, from_value),
        fold("To", to),
        _subject_line(content.subject),
        b"Auto-Submitted: auto-generated\r\n",
    ]
    if reply_to:
        lines.append(fold("Reply-To", _settings_address(reply_to)))
    lines.extend(
        fold(header, value) for header, value in content.headers.items() if header != "Return-Path"
    )
    lines.append(fold("Content-Language", content.language))
    delimiter = b"--" + boundary.encode("ascii")
    lines += [
        b"\r\n",
        delimiter,
        b"\r\n",
        _wire_part(content.text, "plain", qp_lines),
        b"\r\n",
        delimiter,
        b"\r\n",
        _wire_part(content.html, "html", qp_lines),
        b"\r\n",
        delimiter,
        b"--\r\n",
    ]
    return Wire(envelope_from, recipients, b"".join(lines))


@functools.lru_cache(maxsize=16)
def _envelope_address(from_value: str) -> str:
    return email.utils.getaddresses([from_value])[0][1]


@functools.lru_cache(maxsize=16)
def _from_line(name: str, address: str) -> bytes:
    value = formataddr((name, address), charset=_UTF8) if name else address
    return _WIRE_POLICY.fold_binary("From", value)


@functools.lru_cache(maxsize=64)
def _subject_line(subject: str) -> bytes:
    """The Subject header as the generator folds it (a batch's mails share few subjects)."""
    return _WIRE_POLICY.fold_binary("Subject", _header(subject))


_PART_HEAD = {
    (subtype, charset, encoding): (
        f'Content-Type: text/{subtype}; charset="{charset}"\r\nMIME-Version: 1.0\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
    ).encode("ascii")
    for subtype in ("plain", "html")
    for charset, encoding in (("us-ascii", "7bit"), ("utf-8", "quoted-printable"))
}
# What the generator does to a text part's payload: ">From " for "From " at a line's
# start (compat32 mangles), every line break as CRLF.
_FROM_LINE = re.compile(r"^From ", re.MULTILINE)
_ANY_BREAK = re.compile(r"\r\n|\r|\n")


def _wire_part(text: str, subtype: str, qp_lines: dict[str, str] | None = None) -> bytes:
    """A part as ``_text_part`` makes it and the generator writes it."""
    if text.isascii() and max(map(len, text.splitlines()), default=0) <= 998:
        head, payload = _PART_HEAD[(subtype, "us-ascii", "7bit")], text
    else:
        head = _PART_HEAD[(subtype, "utf-8", "quoted-printable")]
        payload = qp.body_encode(text, qp_lines)  # what the email package writes, faster
    if "From " in payload:
        payload = _FROM_LINE.sub(">From ", payload)
    # Quoted-printable has only LF breaks (qp.body_encode), as many texts do: a replace.
    crlf = _ANY_BREAK.sub("\r\n", payload) if "\r" in payload else payload.replace("\n", "\r\n")
    return head + crlf.encode("ascii")


def needs_smtputf8(message: Message) -> bool:
    """Whether an address of the message cannot be written in ASCII (RFC 6531)."""
    return any(not str(message.get(name, "")).isascii() for name in ("From", "To", "Return-Path"))


# Header text from a name someone typed (a sequence's, a purpose's): no line breaks,
# no quotes or angle brackets that would end the phrase.
_PHRASE_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\\<>]')
_LIST_KEY_UNSAFE = re.compile(r"[^a-z0-9-]+")


def list_id(mail_from: str, key: str, name: str) -> str:
    """RFC 2919 ``List-Id``: ``"Name" <key.domain>``, the domain that of
    LEADVAULT_MAIL_FROM (punycode); ``key`` may hold dots (``a.nurture``)."""
    labels = [_LIST_KEY_UNSAFE.sub("-", part.lower()).strip("-") for part in key.split(".")]
    label = ".".join(part for part in labels if part) or "list"
    phrase = _PHRASE_UNSAFE.sub("", name)[:80]
    return f'"{phrase}" <{label}.{addresses.domain_of(mail_from)}>'


def marketing_headers(
    mail_from: str, *, unsubscribe: list[str], list_key: str, list_name: str
) -> dict[str, str]:
    """The list headers every marketing mail carries, made in this one place:
    RFC 8058 one-click unsubscribe (``unsubscribe``: the https URL first, then any
    mailto URI) and one RFC 2919 ``List-Id``."""
    return {
        "List-Unsubscribe": ", ".join(f"<{target}>" for target in unsubscribe),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": list_id(mail_from, list_key, list_name),
    }


def plain_text(message: Message) -> str:
    """The text of the message's first text/plain part (either kind of message)."""
    for part in message.walk():
        if part.get_content_type() == "text/plain" and not part.is_multipart():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload.decode(part.get_content_charset() or "utf-8", "replace")
    return ""


# A link ends at white space or at a control character (never echoed to a terminal).
_LINK = re.compile(r"https?://[^\s\x00-\x1f\x7f-\x9f]+")


class FileSender:
    """Writes each mail as an .eml file and prints its links (the embedded default)."""

    def __init__(self, folder: Path, *, echo: bool = True) -> None:
        self.folder = folder
        self.echo = echo

    def send(self, message: Message) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = message["Message-ID"].strip("<>").replace("@", "_").replace("/", "_")
        path = self.folder / f"{name}.eml"
        # Created 0600 in one step: never briefly readable by others.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        # RFC 6532 (raw UTF-8 headers) only where an address needs it.
        policy = message.policy.clone(utf8=True) if needs_smtputf8(message) else message.policy
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(message.as_bytes(policy=policy))
        if self.echo:
            links = [link.rstrip(".,)>") for link in _LINK.findall(plain_text(message))]
            subject = str(make_header(decode_header(str(message["Subject"] or ""))))
            # Subject and links only: the recipient is personal data. Both may hold
            # what a lead typed, so control characters are shown, never sent.
            click.echo(f"[mail] {for_terminal(subject)} -> {path.name}")
            for link in links:
                click.echo(f"       {for_terminal(link)}")

    def close(self) -> None:
        return None


def sender_for(settings: Settings) -> Sender:
    if settings.smtp is None:
        return FileSender(settings.mail_folder)
    return SmtpSender(settings.smtp)
