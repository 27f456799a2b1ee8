"""Every setting Leadvault reads, in one closed, validated list.

Settings come from ``LEADVAULT_*`` environment variables only. Secrets may also
be given as ``LEADVAULT_X_FILE`` naming a file that holds the value (Docker and
Kubernetes secrets). ``load()`` validates everything at once and raises
:class:`SettingsError` naming the first bad variable, so start-up fails fast
with a one-line message instead of a traceback deep inside a request.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PREFIX = "LEADVAULT_"


class SettingsError(Exception):
    """A setting is missing or malformed; ``key`` names the variable."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclasses.dataclass(frozen=True)
class SmtpConfig:
    """A parsed ``LEADVAULT_SMTP_URL``."""

    host: str
    port: int
    security: str  # "plain", "starttls" or "tls"
    username: str | None
    password: str | None

    def describe(self) -> str:
        """The URL without its password, for ``leadvault check``."""
        user = f"{self.username}@" if self.username else ""
        return f"{self.security} {user}{self.host}:{self.port}"


@dataclasses.dataclass(frozen=True)
class QuietHours:
    """A daily window (local time, may span midnight) in which no nurture mail is queued."""

    start: dt.time
    end: dt.time

    def describe(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclasses.dataclass(frozen=True)
class ImapConfig:
    """A parsed ``LEADVAULT_BOUNCE_IMAP_URL``."""

    host: str
    port: int
    tls: bool
    username: str
    password: str
    mailbox: str

    def describe(self) -> str:
        scheme = "imaps" if self.tls else "imap"
        return f"{scheme} {self.username}@{self.host}:{self.port}/{self.mailbox}"


@dataclasses.dataclass(frozen=True)
class Settings:
    instance: Path
    database_url: str
    base_url: str
    keyring: Path
    smtp_url: SmtpConfig | None
    mail_from: str
    redis_url: str | None
    optin_max_age_days: int
    optin_resend_minutes: int
    email_check_deliverability: bool
    max_body_bytes: int
    form_min_fill_seconds: float
    form_max_age_hours: int
    rate_limit_ip: str
    rate_limit_email: str
    imprint_url: str
    privacy_url: str
    worker_poll_seconds: float
    worker_batch_size: int
    worker_nice: int
    sent_mail_retention_days: int
    outbox_max_attempts: int
    key_rotation_days: int
    outbox_retry_seconds: float
    outbox_lease_seconds: float
    log_level: str
    proxy_fix: int
    unsubscribe_mailto: str | None
    prefs_link_hours: int
    inactive_lead_days: int
    proof_retention_days: int
    rate_limit_manage: str
    rate_limit_track: str
    rate_limit_resend: str
    webhook_allow_networks: tuple[str, ...]
    webhook_timeout_seconds: float
    webhook_retry_schedule: tuple[float, ...]
    webhook_disable_after_hours: float
    webhook_rotation_overlap_hours: float
    webhook_alert_email: str | None
    webhook_log_days: int
    webhook_concurrency: int
    import_repermission_per_hour: int
    time_zone: str
    nurture_max_mails: int
    nurture_cap_days: int
    nurture_quiet_hours: QuietHours | None
    bounce_domain: str | None
    bounce_imap_url: ImapConfig | None
    admin_session_idle_minutes: int
    admin_session_max_hours: int
    admin_login_limit_ip: str
    admin_login_limit_account: str
    admin_set_password_hours: int
    api_token_max_days: int
    brand_name: str | None = None
    brand_logo: Path | None = None
    brand_logo_in_mails: bool = False
    brand_accent_color: str = "#0b5cad"
    brand_text_color: str = "#1d1d1f"
    brand_font: str = "system-ui, sans-serif"
    brand_website_url: str | None = None
    brand_postal_address: str | None = None
    mail_reply_to: str | None = None
    # False while IMPRINT_URL / PRIVACY_URL fall back to the placeholder pages.
    imprint_configured: bool = True
    privacy_configured: bool = True

    @property
    def zone(self) -> ZoneInfo:
        """The instance's time zone (quiet hours, waits "in the instance's time zone")."""
        return ZoneInfo(self.time_zone)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def smtp(self) -> SmtpConfig | None:
        return self.smtp_url

    @property
    def mail_folder(self) -> Path:
        return self.instance / "mail"

    @property
    def assets_folder(self) -> Path:
        return self.instance / "assets"


def _str(raw: str) -> str:
    return raw


def _int(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"expected a whole number, got {raw!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise ValueError(f"must be {bound}, got {value}")
        return value

    return parse


def _float(minimum: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"expected a number, got {raw!r}") from None
        if value < minimum:
            raise ValueError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _http_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {raw!r}")
    return raw.rstrip("/")


_RATE = re.compile(r"^\s*\d+\s*(/|per)\s*\d*\s*(second|minute|hour|day)s?\s*$", re.IGNORECASE)


def _rate(raw: str) -> str:
    if not all(_RATE.match(part) for part in raw.split(";")):
        raise ValueError(f"expected a rate such as '10/minute', got {raw!r}")
    return raw


_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR"}


def _log_level(raw: str) -> str:
    if raw.upper() not in _LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(sorted(_LOG_LEVELS))}, got {raw!r}")
    return raw.upper()


def parse_database_url(raw: str) -> str:
    """Accept sqlite:// and postgresql:// URLs; pin PostgreSQL to psycopg 3."""
    scheme, sep, rest = raw.partition("://")
    if not sep:
        raise ValueError("expected a URL such as postgresql://user@host/db or sqlite:///path")
    scheme = scheme.lower()
    if scheme in {"postgres", "postgresql", "postgresql+psycopg"}:
        parts = urlsplit(raw)
        try:
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise ValueError("the port is not a number") from None
        if not parts.hostname and "host=" not in parts.query:
            raise ValueError("a PostgreSQL URL needs a host")
        if not parts.path.strip("/"):
            raise ValueError("a PostgreSQL URL needs a database name")
        return "postgresql+psycopg://" + rest
    if scheme == "sqlite":
        if not rest.startswith("/") or rest in {"/", "//"}:
            raise ValueError("a SQLite URL needs a file path: sqlite:///relative or sqlite:////abs")
        return raw
    raise ValueError(f"unsupported database {scheme!r}; use postgresql:// or sqlite:///")


def parse_smtp_url(raw: str) -> SmtpConfig:
    parts = urlsplit(raw)
    schemes = {"smtp": ("plain", 25), "smtp+starttls": ("starttls", 587), "smtps": ("tls", 465)}
    if parts.scheme not in schemes:
        raise ValueError("expected smtp://, smtp+starttls:// or smtps:// followed by host[:port]")
    if not parts.hostname:
        raise ValueError("the SMTP URL has no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the SMTP port is not a number") from None
    security, default_port = schemes[parts.scheme]
    return SmtpConfig(
        host=parts.hostname,
        port=port or default_port,
        security=security,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def _mail_from(raw: str) -> str:
    from email.utils import parseaddr

    _name, address = parseaddr(raw)
    if "@" not in address:
        raise ValueError(f"expected an address such as 'Leadvault <news@example.com>', got {raw!r}")
    return raw


def _redis_url(raw: str) -> str:
    if urlsplit(raw).scheme not in {"redis", "rediss", "unix"}:
        raise ValueError("expected a redis:// or rediss:// URL")
    return raw


def _networks(raw: str) -> tuple[str, ...]:
    """A comma-separated list of CIDR networks, e.g. ``127.0.0.1/32,10.20.0.0/16``."""
    import ipaddress

    networks: list[str] = []
    for part in raw.split(","):
        if not part.strip():
            continue
        try:
            networks.append(str(ipaddress.ip_network(part.strip(), strict=False)))
        except ValueError:
            raise ValueError(
                f"expected networks such as 10.0.0.0/8, got {part.strip()!r}"
            ) from None
    return tuple(networks)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _durations(raw: str) -> tuple[float, ...]:
    """Comma-separated delays such as ``5s,5m,2h`` as seconds."""
    delays: list[float] = []
    for part in raw.split(","):
        match = _DURATION.match(part)
        if match is None:
            raise ValueError(f"expected delays such as '5s,5m,2h', got {part.strip()!r}")
        delays.append(float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    if not delays or len(delays) > 20:
        raise ValueError("expected between 1 and 20 delays")
    return tuple(delays)


def _address(raw: str) -> str:
    from email.utils import parseaddr

    _name, address = parseaddr(raw)
    if "@" not in address:
        raise ValueError(f"expected an email address, got {raw!r}")
    return raw


_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


def _color(raw: str) -> str:
    value = raw.strip()
    if not _COLOR.match(value):
        raise ValueError(f"expected a colour such as #0b5cad, got {raw!r}")
    if len(value) == 4:
        value = "#" + "".join(c * 2 for c in value[1:])
    return value.lower()


def _text_color(raw: str) -> str:
    from leadvault.colors import contrast

    value = _color(raw)
    ratio = contrast(value, "#ffffff")
    if ratio < 4.5:
        raise ValueError(
            f"{value} on white has a contrast of {ratio:.1f}:1; text needs at least 4.5:1 "
            "(WCAG AA); choose a darker colour"
        )
    return value


# Font names, commas, spaces, quotes and hyphens: nothing that ends a CSS declaration.
_FONT = re.compile(r"^[A-Za-z0-9 ,'\"\-]{1,200}$")


def _font(raw: str) -> str:
    value = " ".join(raw.split())
    if not _FONT.match(value):
        raise ValueError(
            "expected a font stack such as 'Inter, Helvetica, Arial, sans-serif' "
            f"(letters, digits, spaces, commas, quotes), got {raw!r}"
        )
    return value


_LOGO_TYPES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg"}
_LOGO_MAX_BYTES = 512 * 1024


def _logo(raw: str) -> Path:
    path = Path(raw).expanduser().resolve()
    if path.suffix.lower() not in _LOGO_TYPES:
        raise ValueError(f"expected a .png, .jpg, .gif, .webp or .svg file, got {raw!r}")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    if not path.is_file() or size == 0 or size > _LOGO_MAX_BYTES:
        raise ValueError(f"{path} must be a file of 1 byte to {_LOGO_MAX_BYTES // 1024} KiB")
    return path


def _one_line(maximum: int) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = " ".join(raw.split())
        if not value or len(value) > maximum or any(ord(c) < 32 for c in value):
            raise ValueError(f"expected one line of at most {maximum} characters")
        return value

    return parse


def _postal_address(raw: str) -> str:
    """Lines separated by ``;`` or new lines, e.g. ``Beispiel GmbH; Hauptstr. 1; 10115 Berlin``."""
    lines = [" ".join(part.split()) for part in re.split(r"[;\n]", raw)]
    lines = [line for line in lines if line]
    if not lines or len(lines) > 6 or any(len(line) > 100 for line in lines):
        raise ValueError("expected 1 to 6 lines (separated by ';') of at most 100 characters")
    return "\n".join(lines)


def _unconfirmed_days(raw: str) -> int:
    value = _int(1)(raw)
    if value > 14:
        raise ValueError(
            "unconfirmed opt-in requests may be kept at most 14 days "
            "(German practice treats longer storage without consent as unlawful)"
        )
    return value


def _time_zone(raw: str) -> str:
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Europe", a folder
        raise ValueError(
            f"expected a time zone such as Europe/Berlin or UTC, got {raw!r}"
        ) from None
    return raw


_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def _quiet_hours(raw: str) -> QuietHours | None:
    if raw.strip().lower() in {"off", "none"}:
        return None
    start, sep, end = raw.partition("-")
    found = [_CLOCK.match(part.strip()) for part in (start, end)]
    if not sep or not all(found) or start.strip() == end.strip():
        raise ValueError(f"expected a window such as 20:00-08:00, or off, got {raw!r}")
    times = [dt.time(int(m.group(1)), int(m.group(2))) for m in found if m]
    return QuietHours(times[0], times[1])


_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def _domain(raw: str) -> str:
    value = raw.strip().lower()
    if not _DOMAIN.match(value):
        raise ValueError(f"expected a mail domain such as bounces.example.com, got {raw!r}")
    return value


def parse_imap_url(raw: str) -> ImapConfig:
    parts = urlsplit(raw)
    if parts.scheme not in {"imap", "imaps"}:
        raise ValueError("expected imaps://user:password@host[:port][/mailbox] (or imap://)")
    if not parts.hostname or not parts.username:
        raise ValueError("the IMAP URL needs a user and a host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the IMAP port is not a number") from None
    tls = parts.scheme == "imaps"
    return ImapConfig(
        host=parts.hostname,
        port=port or (993 if tls else 143),
        tls=tls,
        username=unquote(parts.username),
        password=unquote(parts.password or ""),
        mailbox=unquote(parts.path.strip("/")) or "INBOX",
    )


@dataclasses.dataclass(frozen=True)
class _Key:
    name: str
    parse: Callable[[str], Any]
    default: str | None
    secret: bool = False
    doc: str = ""


# The closed list. README's configuration table is written from these docs.
KEYS: tuple[_Key, ...] = (
    _Key("INSTANCE", _str, "./instance", doc="Folder for the SQLite database, key ring and mails"),
    _Key(
        "DATABASE_URL",
        parse_database_url,
        None,
        secret=True,
        doc="postgresql://user:pw@host/db or sqlite:///path (default: SQLite in the instance)",
    ),
    _Key("BASE_URL", _http_url, "http://127.0.0.1:5000", doc="Public URL used in links"),
    _Key("KEYRING", _str, None, doc="Key ring file (default: keyring.json in the instance)"),
    _Key(
        "SMTP_URL",
        parse_smtp_url,
        None,
        secret=True,
        doc="smtp://, smtp+starttls:// or smtps://[user:pw@]host[:port]; unset: .eml files",
    ),
    _Key("MAIL_FROM", _mail_from, "Leadvault <leadvault@localhost>", doc="Sender of all mails"),
    _Key("REDIS_URL", _redis_url, None, secret=True, doc="Rate-limit storage (default: memory)"),
    _Key("OPTIN_MAX_AGE_DAYS", _unconfirmed_days, "7", doc="Opt-in link lifetime; max 14"),
    _Key("OPTIN_RESEND_MINUTES", _int(0), "15", doc="No second opt-in mail within this time"),
    _Key("EMAIL_CHECK_DELIVERABILITY", _bool, "false", doc="Check the email domain in DNS"),
    _Key("MAX_BODY_BYTES", _int(1024), "65536", doc="Largest accepted submission body"),
    _Key(
        "FORM_MIN_FILL_SECONDS",
        _float(0),
        "2",
        doc="Faster submissions are counted (`report bots`), not refused",
    ),
    _Key("FORM_MAX_AGE_HOURS", _int(1), "24", doc="Render tokens older than this are refused"),
    _Key("RATE_LIMIT_IP", _rate, "30/minute", doc="Submissions per IP address"),
    _Key("RATE_LIMIT_EMAIL", _rate, "5/hour", doc="Submissions per email address"),
    _Key("MAIL_REPLY_TO", _address, None, doc="Reply-To of mails (unset: none)"),
    _Key("BRAND_NAME", _one_line(80), None, doc="Company name on every page and mail"),
    _Key(
        "BRAND_LOGO",
        _logo,
        None,
        doc="Logo file (.png, .jpg, .gif, .webp, .svg; up to 512 KiB), served by Leadvault",
    ),
    _Key(
        "BRAND_LOGO_IN_MAILS",
        _bool,
        "false",
        doc="Show the logo in mails too (an image costs short mails up to 2.2 SpamAssassin points)",
    ),
    _Key("BRAND_ACCENT_COLOR", _color, "#0b5cad", doc="Buttons and links, e.g. #0b5cad"),
    _Key(
        "BRAND_TEXT_COLOR",
        _text_color,
        "#1d1d1f",
        doc="Body text; needs a 4.5:1 contrast on white",
    ),
    _Key(
        "BRAND_FONT",
        _font,
        'system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif',
        doc="CSS font stack of pages and mails",
    ),
    _Key("BRAND_WEBSITE_URL", _http_url, None, doc="The company's website, linked from the logo"),
    _Key(
        "BRAND_POSTAL_ADDRESS",
        _postal_address,
        None,
        doc="Postal address in the mail footer, lines separated by ';'",
    ),
    _Key("IMPRINT_URL", _http_url, None, doc="Imprint, linked in every mail and page"),
    _Key("PRIVACY_URL", _http_url, None, doc="Privacy policy, linked in every mail and page"),
    _Key("WORKER_POLL_SECONDS", _float(0.05), "2", doc="Worker's idle poll interval"),
    _Key(
        "WORKER_BATCH_SIZE", _int(1, 1000), "100", doc="Inbox items or mails a worker takes at once"
    ),
    _Key(
        "WORKER_NICE",
        _int(0, 19),
        "19",
        doc="CPU niceness a `leadvault worker` lowers itself by (0-19): the web tier first",
    ),
    _Key(
        "SENT_MAIL_RETENTION_DAYS",
        _int(1),
        "30",
        doc="Bodies of sent mails are deleted after this; kind, time, id and status stay",
    ),
    _Key("OUTBOX_MAX_ATTEMPTS", _int(1), "12", doc="Delivery attempts before a mail fails"),
    _Key(
        "KEY_ROTATION_DAYS",
        _int(0),
        "30",
        doc="The worker rotates the master key this often and retires the version before "
        "last, so erased data in old row versions, WAL and backups becomes unreadable "
        "(0: rotate by hand)",
    ),
    _Key("OUTBOX_RETRY_SECONDS", _float(0.1), "30", doc="First retry delay; doubles each time"),
    _Key(
        "OUTBOX_LEASE_SECONDS", _float(1), "300", doc="A dead worker's claimed mails return after"
    ),
    _Key("LOG_LEVEL", _log_level, "INFO", doc="DEBUG, INFO, WARNING or ERROR"),
    _Key("PROXY_FIX", _int(0, 5), "0", doc="Number of trusted reverse proxies in front"),
    _Key("UNSUBSCRIBE_MAILTO", _mail_from, None, doc="Inbound address for mailto: unsubscribes"),
    _Key("PREFS_LINK_HOURS", _int(1, 720), "24", doc="Lifetime of preference-center links"),
    _Key("INACTIVE_LEAD_DAYS", _int(1), "30", doc="Leads without consent or activity are erased"),
    _Key("PROOF_RETENTION_DAYS", _int(1), "1095", doc="Keep proof of withdrawn consent (3 years)"),
    _Key("RATE_LIMIT_MANAGE", _rate, "5/hour", doc="Manage-my-data requests per IP and address"),
    _Key("RATE_LIMIT_TRACK", _rate, "120/minute", doc="Browser tracking events per IP address"),
    _Key(
        "RATE_LIMIT_RESEND",
        _rate,
        "5/hour",
        doc="New download and opt-in links asked for, per IP and per address",
    ),
    _Key(
        "WEBHOOK_ALLOW_NETWORKS",
        _networks,
        "",
        doc="Networks webhooks may reach although not public, e.g. 10.20.0.0/16 (default: none)",
    ),
    _Key("WEBHOOK_TIMEOUT_SECONDS", _float(1), "15", doc="Time a webhook receiver has to answer"),
    _Key(
        "WEBHOOK_RETRY_SCHEDULE",
        _durations,
        "5s,5m,30m,2h,5h,10h,14h,20h,24h",
        doc="Delays between webhook attempts (Standard Webhooks schedule)",
    ),
    _Key(
        "WEBHOOK_DISABLE_AFTER_HOURS",
        _float(0.0001),
        "120",
        doc="A webhook endpoint failing this long is disabled",
    ),
    _Key(
        "WEBHOOK_ROTATION_OVERLAP_HOURS",
        _float(0),
        "24",
        doc="After a secret rotation, the old secret also signs for this long",
    ),
    _Key("WEBHOOK_ALERT_EMAIL", _address, None, doc="Who is mailed when an endpoint is disabled"),
    _Key("WEBHOOK_LOG_DAYS", _int(1), "30", doc="Days webhook deliveries and attempts are kept"),
    _Key("WEBHOOK_CONCURRENCY", _int(1, 64), "4", doc="Webhook requests a worker sends at once"),
    _Key(
        "IMPORT_REPERMISSION_PER_HOUR",
        _int(1, 100_000),
        "200",
        doc="Re-permission mails to imported contacts without proof of consent, per hour",
    ),
    _Key(
        "TIME_ZONE",
        _time_zone,
        "UTC",
        doc="The instance's time zone (quiet hours, sequence waits; dates for a lead whose "
        "browser sent none)",
    ),
    _Key(
        "NURTURE_MAX_MAILS", _int(1, 100), "2", doc="Nurture mails per lead within the cap period"
    ),
    _Key("NURTURE_CAP_DAYS", _int(1, 365), "7", doc="The cap period in days, across all sequences"),
    _Key(
        "NURTURE_QUIET_HOURS",
        _quiet_hours,
        "20:00-08:00",
        doc="No nurture mail in this window (instance time zone); off to allow any time",
    ),
    _Key(
        "BOUNCE_DOMAIN", _domain, None, doc="VERP return path bounce+ID@this domain (unset: none)"
    ),
    _Key(
        "BOUNCE_IMAP_URL",
        parse_imap_url,
        None,
        secret=True,
        doc="imaps://user:pw@host/mailbox polled for bounces and complaints (unset: no polling)",
    ),
    _Key(
        "ADMIN_SESSION_IDLE_MINUTES",
        _int(1, 1440),
        "30",
        doc="A staff sign-in ends after this long without a request",
    ),
    _Key(
        "ADMIN_SESSION_MAX_HOURS",
        _int(1, 168),
        "12",
        doc="A staff sign-in ends this long after it began, however active",
    ),
    _Key(
        "ADMIN_LOGIN_LIMIT_IP",
        _rate,
        "30/15minutes",
        doc="Staff sign-in attempts per IP address",
    ),
    _Key(
        "ADMIN_LOGIN_LIMIT_ACCOUNT",
        _rate,
        "5/15minutes",
        doc="Failed staff sign-in attempts per account (known or not)",
    ),
    _Key(
        "ADMIN_SET_PASSWORD_HOURS",
        _int(1, 336),
        "72",
        doc="Lifetime of a set-password link from `users add` / `users reset-password`",
    ),
    _Key(
        "API_TOKEN_MAX_DAYS",
        _int(1, 3650),
        "365",
        doc="Longest lifetime of a personal API token",
    ),
)
_KNOWN = {PREFIX + key.name for key in KEYS} | {
    PREFIX + key.name + "_FILE" for key in KEYS if key.secret
}
# Variables the test suite and tools read; allowed so the closed check passes.
_TOLERATED = {PREFIX + "TEST_DATABASE_URL"}


def _raw_value(key: _Key, environ: Mapping[str, str]) -> str | None:
    env_name = PREFIX + key.name
    if key.secret and environ.get(env_name + "_FILE"):
        path = Path(environ[env_name + "_FILE"])
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(env_name + "_FILE", f"cannot read {path}: {exc.strerror}") from None
    value = environ.get(env_name)
    if value is None or value == "":
        return key.default
    return value


def load(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read and validate every setting; raise :class:`SettingsError` on the first bad one."""
    environ = os.environ if environ is None else environ
    for name in sorted(environ):
        if name.startswith(PREFIX) and name not in _KNOWN | _TOLERATED:
            raise SettingsError(name, "unknown setting (see the configuration table in README)")
    values: dict[str, Any] = {}
    for key in KEYS:
        field = key.name.lower()
        if field in overrides:
            values[field] = overrides.pop(field)
            continue
        raw = _raw_value(key, environ)
        if raw is None:
            values[field] = None
            continue
        try:
            values[field] = key.parse(raw)
        except ValueError as exc:
            raise SettingsError(PREFIX + key.name, str(exc)) from None
    if overrides:
        raise SettingsError(PREFIX + sorted(overrides)[0].upper(), "unknown setting override")

    instance = Path(values["instance"]).expanduser().resolve()
    values["instance"] = instance
    if values["database_url"] is None:
        values["database_url"] = f"sqlite:///{instance / 'leadvault.db'}"
    # Until the operator names their own pages, placeholders say what to configure.
    values["imprint_configured"] = values["imprint_url"] is not None
    values["privacy_configured"] = values["privacy_url"] is not None
    values["imprint_url"] = values["imprint_url"] or f"{values['base_url']}/imprint"
    values["privacy_url"] = values["privacy_url"] or f"{values['base_url']}/privacy"
    keyring = values["keyring"]
    values["keyring"] = (
        Path(keyring).expanduser().resolve() if keyring else instance / "keyring.json"
    )
    settings = Settings(**values)
    if settings.instance.exists() and not settings.instance.is_dir():
        raise SettingsError(PREFIX + "INSTANCE", f"{settings.instance} is not a folder")
    return settings
