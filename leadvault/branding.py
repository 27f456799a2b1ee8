"""The operator's brand on every page and mail: name, logo, colours, font, footer.

Pages get ``brand`` in their template context and a stylesheet of their own
(``/brand.css``, CSS custom properties; the CSP allows no inline style). Mails
are rendered here at queue time: the text part and one HTML layout
(``leadvault/mail.html``: tables, CSS inlined by css-inline, dark-mode rules
kept in a style element for the clients that read them).

``gaps()`` lists what a production instance (a base URL that is not loopback)
still lacks; ``leadvault check`` prints it and the worker holds marketing
mail while the imprint, the privacy policy or a real sender is missing.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import ipaddress
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from leadvault import colors
from leadvault.settings import Settings

PAGE_BACKGROUND = "#ffffff"
MAIL_BACKGROUND = "#f4f4f5"
MUTED = "#52525b"  # footer text: 7.7:1 on white, 7.0:1 on the mail background
DARK_BACKGROUND = "#18181b"
DARK_TEXT = "#f4f4f5"

_LOGO_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
}


@dataclasses.dataclass(frozen=True)
class Brand:
    """What templates use: ``brand.name``, ``brand.logo_url`` (absolute), colours …"""

    name: str | None
    logo_url: str | None  # in mails: None unless LEADVAULT_BRAND_LOGO_IN_MAILS
    logo_path: str | None  # the page's own path (pages link it relative to the origin)
    website_url: str | None
    imprint_url: str
    privacy_url: str
    address_lines: tuple[str, ...]
    font: str
    text: str
    accent: str
    link: str  # the accent, darkened until it reads on white
    dark_link: str  # the accent, lightened until it reads on the dark background
    button_text: str  # white or black on the accent
    muted: str
    background: str
    mail_background: str
    dark_background: str
    dark_text: str
    css_version: str


def is_production(settings: Settings) -> bool:
    """True when the base URL is not a loopback address (the instance faces people)."""
    host = (urlsplit(settings.base_url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


_PLACEHOLDER_DOMAINS = ("localhost", "local", "localdomain", "invalid", "test", "example")


def sender_is_real(settings: Settings) -> bool:
    """False for the default sender and for domains that cannot receive mail."""
    _name, address = parseaddr(settings.mail_from)
    domain = address.rpartition("@")[2].lower().rstrip(".")
    if "." not in domain:
        return False
    labels = domain.split(".")
    if labels[-1] in _PLACEHOLDER_DOMAINS:
        return False
    return labels[-2] not in {"example"}


def gaps(settings: Settings) -> list[str]:
    """What blocks marketing mail on a production instance (empty: nothing)."""
    missing = []
    if not settings.imprint_configured:
        missing.append("LEADVAULT_IMPRINT_URL is not set (the footer shows a placeholder page)")
    if not settings.privacy_configured:
        missing.append("LEADVAULT_PRIVACY_URL is not set (the footer shows a placeholder page)")
    if not sender_is_real(settings):
        missing.append(
            f"LEADVAULT_MAIL_FROM ({parseaddr(settings.mail_from)[1]}) is not an address "
            "of your own domain"
        )
    return missing


def advice(settings: Settings) -> list[str]:
    """Recommended, not blocking: what leads would miss in pages and mails."""
    notes = []
    if not settings.brand_name:
        notes.append("LEADVAULT_BRAND_NAME is not set: pages and mails name no company")
    if not settings.brand_postal_address:
        notes.append("LEADVAULT_BRAND_POSTAL_ADDRESS is not set: mails carry no postal address")
    return notes


def marketing_blocked(settings: Settings) -> bool:
    """The worker holds marketing mail while this is True."""
    return is_production(settings) and bool(gaps(settings))


@functools.cache
def _logo_version(path: Path, mtime: float, size: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def logo_version(settings: Settings) -> str | None:
    if settings.brand_logo is None:
        return None
    stat = settings.brand_logo.stat()
    return _logo_version(settings.brand_logo, stat.st_mtime, stat.st_size)


def logo_mimetype(settings: Settings) -> str | None:
    if settings.brand_logo is None:
        return None
    return _LOGO_TYPES.get(settings.brand_logo.suffix.lower())


@functools.cache
def brand_of(settings: Settings) -> Brand:
    accent = settings.brand_accent_color
    logo = logo_version(settings)
    logo_path = f"/brand/logo?v={logo}" if logo else None
    brand = Brand(
        name=settings.brand_name,
        logo_url=(
            f"{settings.base_url}{logo_path}"
            if logo_path and settings.brand_logo_in_mails
            else None
        ),
        logo_path=logo_path,
        website_url=settings.brand_website_url,
        imprint_url=settings.imprint_url,
        privacy_url=settings.privacy_url,
        address_lines=tuple((settings.brand_postal_address or "").splitlines()),
        font=settings.brand_font,
        text=settings.brand_text_color,
        accent=accent,
        link=colors.readable_on(accent, PAGE_BACKGROUND),
        dark_link=colors.readable_on(accent, DARK_BACKGROUND),
        button_text=colors.text_on(accent),
        muted=MUTED,
        background=PAGE_BACKGROUND,
        mail_background=MAIL_BACKGROUND,
        dark_background=DARK_BACKGROUND,
        dark_text=DARK_TEXT,
        css_version="",
    )
    version = hashlib.sha256(_css(brand).encode()).hexdigest()[:12]
    return dataclasses.replace(brand, css_version=version)


def _css(brand: Brand) -> str:
    # Values are validated settings (colours #rrggbb, a font stack without ; { } < >).
    return (
        ":root {\n"
        f"  --lv-accent: {brand.accent};\n"
        f"  --lv-link: {brand.link};\n"
        f"  --lv-on-accent: {brand.button_text};\n"
        f"  --lv-text: {brand.text};\n"
        f"  --lv-muted: {brand.muted};\n"
        f"  --lv-font: {brand.font};\n"
        "}\n"
    )


def stylesheet(settings: Settings) -> str:
    """``/brand.css``: the brand's colours and font as CSS custom properties."""
    return _css(brand_of(settings))


# --- mails -------------------------------------------------------------------------


def subject(settings: Settings, text: str) -> str:
    """A mail subject that names the company: "Your download: X - Beispiel GmbH" (an en
    dash)."""
    name = settings.brand_name
    return f"{text} \N{EN DASH} {name}" if name and name not in text else text


@functools.cache
def _inliner() -> Any:
    import css_inline

    # Style elements marked data-css-inline="keep" (dark mode) stay; nothing is fetched.
    return css_inline.CSSInliner(load_remote_stylesheets=False)


def inline_css(html: str) -> str:
    """The layout's style element moved into style attributes (what mail clients read)."""
    return _inliner().inline(html)


def mail_parts(name: str, context: dict[str, Any]) -> dict[str, str]:
    """``text`` and ``html`` of mail ``name`` (``<name>.txt`` / ``<name>.html``), the
    HTML with its CSS inlined; ``context`` is ``db.mail_context(...)``'s. For
    ``MailContent(..., **mail_parts(name, context))``."""
    from flask import render_template

    return {
        "text": render_template(f"{name}.txt", **context),
        "html": inline_css(render_template(f"{name}.html", **context)),
    }
