"""Email addresses in one canonical form, and the forms mail headers need.

An address is normalised once, by :func:`canonical`, wherever it is stored or
hashed (``leads.get_or_create``, ``Vault.blind_index``): the domain in Unicode
(IDNA 2008, UTS 46 mapping: ``BÜCHER.de``, ``bücher.de`` and
``xn--bcher-kva.de`` are one domain) and the local part in Unicode NFC, as
email-validator normalises them. So one person typing their domain either way
is one lead.

Mail headers and SMTP envelopes take :func:`for_transport`: the domain in its
ASCII (punycode) form, so that every relay can carry it. Only a local part
that is not ASCII still needs SMTPUTF8 (RFC 6531), which the sender uses only
where the relay offers it.
"""

from __future__ import annotations

import functools
import re
from email.utils import formataddr, parseaddr

from email_validator import EmailNotValidError, ValidatedEmail, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES as _MAILBOX_NAMES
from email_validator.rfc_constants import DOT_ATOM_TEXT as _DOT_ATOM
from email_validator.rfc_constants import EMAIL_MAX_LENGTH as _EMAIL_MAX_BYTES


class InvalidAddress(ValueError):
    """Not an email address (the message says why, in English, for logs and the CLI)."""


def _validated(email: str) -> ValidatedEmail:
    try:
        return validate_email(email.strip(), check_deliverability=False, globally_deliverable=False)
    except (EmailNotValidError, UnicodeError) as exc:
        raise InvalidAddress(str(exc)) from None


def canonical(email: str) -> str:
    """The form an address is stored and compared in; InvalidAddress when it is none.

    An address with a dot-atom local part takes :func:`dot_atom_form`'s cheaper check (a
    worker's batch normalises every lead's address); anything else, and every address
    refused, takes the whole check (and its message)."""
    value = email.strip()
    return dot_atom_form(value) or _validated(value).normalized


def dot_atom_form(value: str, *, globally_deliverable: bool = False) -> str | None:
    """email-validator's normal form of an address with a dot-atom local part, checked in
    two parts; None for any other value or when it is refused: the whole check then says
    what it is.

    Such an address has an ASCII dot-atom local part (email-validator's own pattern), one
    "@" and no mailbox name it lower-cases: its local part is valid as it is, and its
    domain is what email-validator makes of it behind a stand-in local part, kept per
    domain (:func:`domain_forms`: most addresses share a few domains, and the domain is
    most of the check's cost); the lengths are checked as email-validator checks them.
    ``globally_deliverable`` as email-validator's (a submission's address needs a domain
    with a period; stored addresses, as :func:`canonical` has them, do not)."""
    local, at, domain = value.partition("@")
    if not at or "@" in domain or not _DOT_ATOM.match(local) or local.lower() in _MAILBOX_NAMES:
        return None
    domains = domain_forms(domain, globally_deliverable=globally_deliverable)
    if domains is None:
        return None
    normal, ascii_domain = domains
    whole = f"{local}@{normal}"
    for form in (value, whole, f"{local}@{ascii_domain}"):
        if len(form.encode()) > _EMAIL_MAX_BYTES:
            return None
    return whole


@functools.lru_cache(maxsize=4096)
def domain_forms(domain: str, *, globally_deliverable: bool = False) -> tuple[str, str] | None:
    """The domain's normal and ASCII forms as email-validator gives them, or None when
    it refuses the domain (checked behind the local part "a", which it accepts)."""
    try:
        checked = validate_email(
            f"a@{domain}", check_deliverability=False, globally_deliverable=globally_deliverable
        )
    except (EmailNotValidError, UnicodeError):
        return None
    return checked.domain, checked.ascii_domain


def index_form(email: str) -> str:
    """What the blind index is computed over: the canonical form, lower-cased.

    Text that is no address (a lookup with anything a visitor typed) is only
    trimmed and lower-cased: it matches nothing, and raises nothing."""
    try:
        form = canonical(email)
    except InvalidAddress:
        form = email.strip()
    return form.lower()


def stored_form(email: str) -> str:
    """The canonical form, or the trimmed text when it is no address (imports keep it)."""
    try:
        return canonical(email)
    except InvalidAddress:
        return email.strip()


def for_transport(email: str) -> str:
    """The address as a header and the SMTP envelope carry it: the domain in punycode;
    a non-ASCII local part stays (it needs SMTPUTF8, see :func:`needs_smtputf8`)."""
    try:
        result = _validated(email)
    except InvalidAddress:
        return email.strip()
    return result.ascii_email or f"{result.local_part}@{result.ascii_domain}"


def needs_smtputf8(email: str) -> bool:
    """Whether the address cannot be written in ASCII at all (its local part is not ASCII)."""
    return not for_transport(email).isascii()


def header_value(value: str) -> str:
    """A From/To header value (``Name <address>`` or a bare address) with its address
    in transport form; a display name is kept (the header encodes it)."""
    if is_plain(value):
        # A bare ASCII address with a lower-case domain (as stored): parsing and
        # validating it would give it back as it is (valid or not), at some cost
        # for every mail the worker sends.
        return value
    name, address = parseaddr(value)
    if not address:
        return value
    address = for_transport(address)
    return formataddr((name, address)) if name else address


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_PLAIN = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+\Z")


def is_plain(value: str) -> bool:
    """A bare ASCII address with a lower-case domain (dot-atoms: what leads' stored
    addresses mostly are): it parses to itself and is its own transport form."""
    return _PLAIN.match(value) is not None


@functools.lru_cache(maxsize=16)
def domain_of(value: str) -> str:
    """The ASCII domain of a From-style value (for Message-IDs and List-Ids);
    ``localhost`` when it holds none."""
    _name, address = parseaddr(value)
    return for_transport(address).rpartition("@")[2].lower() or "localhost"
