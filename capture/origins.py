"""A form's allowed origins: an origin written one way, and whether an address is on one."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import SplitResult, urlsplit

from capture.definitions import FormError
from capture.models import Form
from leadvault import untrusted
from leadvault.i18n import N_

_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_origin(origin: str) -> str:
    parts = urlsplit(origin.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.path not in {"", "/"}:
        raise FormError(
            N_("%(origin)s is not an origin such as https://www.example.com"),
            "allowed_origins",
            origin=repr(origin),
        )
    try:
        port_number = parts.port
    except ValueError:
        raise FormError(
            N_("%(origin)s has a port that is not a number"), "allowed_origins", origin=repr(origin)
        ) from None
    port = f":{port_number}" if port_number and port_number != _DEFAULT_PORTS[parts.scheme] else ""
    return f"{parts.scheme}://{parts.hostname.lower()}{port}"


def page_on_owner_site(form: Form, url: str) -> SplitResult | None:
    """``url`` taken apart when it is a page on one of the form's allowed origins, else None.

    A submitted ``page_url`` or referrer is whatever the sender wrote: only an
    http(s) address whose origin the owner allowed for this form (same scheme,
    host and port; no user info, no backslash that browsers read as a slash)
    may become a link. The result holds no user info.
    """
    return on_origins(form.allowed_origins, url)


def on_origins(origins: Sequence[str], url: str) -> SplitResult | None:
    """``url`` taken apart when it is a page on one of ``origins``, else None."""
    if not origins or "\\" in url or untrusted.control_character(url):
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    try:
        origin = normalise_origin(f"{parts.scheme}://{parts.netloc}")
    except FormError:
        return None
    if origin not in origins:
        return None
    return parts._replace(netloc=origin.split("://", 1)[1])
