"""What ``leadvault check`` reports, as data: the console's settings page shows the
same lines the command prints (one piece of code for both).

Each line has a label, a text (technical English: names, addresses, versions) and
a level: ``info``, ``ok``, ``warning`` or ``error``. Connecting to the database
and the SMTP server is part of the check, so it runs on request, not on every page.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any, Literal

from leadvault.settings import Settings

Level = Literal["info", "ok", "warning", "error"]
LISTED_FAILURES = 10  # failed inbox items named one by one; the count covers the rest
_ERROR_CLASS = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,79}")


@dataclasses.dataclass(frozen=True)
class Line:
    label: str
    text: str
    level: Level = "info"

    def printed(self) -> str:
        """As ``leadvault check`` prints it."""
        return f"{self.label:<13}{self.text}"


def run(app: Any, settings: Settings, *, connection: Any = None) -> list[Line]:
    """Every line of the check, in order; on ``connection`` when given (a request's own,
    so that a page opens no second connection), else on a new one."""
    from sqlalchemy.exc import OperationalError

    from leadvault import migrate
    from leadvault.app import runtime
    from leadvault.mail import DeliveryError, SmtpSender

    rt = runtime(app)
    lines = [
        Line("instance", settings.instance),
        Line("base URL", settings.base_url),
        Line("key ring", f"{settings.keyring} (master key v{rt.vault.keyring.active_version})"),
        Line("rate limits", (settings.redis_url and "redis") or "in memory"),
    ]
    db_label = rt.engine.url.render_as_string(hide_password=True)
    try:
        if connection is None:
            with rt.engine.connect() as own:
                revision = _revision(own)
                inbox = inbox_line(own) if revision in migrate.heads() else None
        else:
            revision = _revision(connection)
            inbox = inbox_line(connection) if revision in migrate.heads() else None
        current = revision in migrate.heads()
        state = "up to date" if current else f"at {revision}, run db upgrade"
        lines.append(
            Line("database", f"{db_label}: answers, schema {state}", "ok" if current else "warning")
        )
        lines += [inbox] if inbox is not None else []
    except OperationalError as exc:
        lines.append(Line("database", f"{db_label}: DOES NOT ANSWER ({first_line(exc)})", "error"))
    if settings.smtp is None:
        lines.append(Line("mail", f"written as .eml files to {settings.mail_folder}"))
    else:
        try:
            SmtpSender(settings.smtp, timeout=5).check()
            lines.append(Line("mail", f"SMTP {settings.smtp.describe()}: answers", "ok"))
        except DeliveryError as exc:
            lines.append(Line("mail", f"SMTP {settings.smtp.describe()}: {exc}", "error"))
    return lines + branding_lines(settings)


def _revision(connection: Any) -> str | None:
    import sqlalchemy as sa
    from alembic.runtime.migration import MigrationContext

    connection.execute(sa.text("SELECT 1"))
    return MigrationContext.configure(connection).get_current_revision()


def inbox_line(connection: Any, now: dt.datetime | None = None) -> Line:
    """Accepted submissions the worker gave up on (the dashboard's queue health counts
    them): an error. How many, how long the oldest has waited, and each one's id and
    error class (never its payload or message: they may hold personal data)."""
    import sqlalchemy as sa

    from leadvault import clock
    from leadvault.models import InboxItem, InboxStatus

    failed = InboxItem.status == InboxStatus.FAILED.value
    count, oldest = connection.execute(
        sa.select(sa.func.count(), sa.func.min(InboxItem.received_at)).where(failed)
    ).one()
    if not count:
        return Line("inbox", "no failed items", "ok")
    rows = connection.execute(
        sa.select(InboxItem.id, InboxItem.last_error)
        .where(failed)
        .order_by(InboxItem.received_at, InboxItem.id)
        .limit(LISTED_FAILURES)
    ).all()
    named = ", ".join(f"#{row.id} {_error_class(row.last_error)}" for row in rows)
    more = f", and {count - len(rows)} more" if count > len(rows) else ""
    age = _age((now or clock.now()) - _utc(oldest))
    return Line(
        "inbox",
        f"{count} FAILED (given up on; the oldest received {age} ago): {named}{more}"
        " - the worker's log names each item's kind",
        "error",
    )


def _error_class(value: str | None) -> str:
    """The exception class the worker recorded; anything else is not shown."""
    found = _ERROR_CLASS.match(value or "")
    return found.group() if found else "(no error recorded)"


def _utc(value: Any) -> dt.datetime:
    """``min()`` bypasses the column type on SQLite: parse and mark UTC."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _age(delta: dt.timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    if seconds >= 86400:
        return f"{seconds // 86400} d {seconds % 86400 // 3600} h"
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 60} min"


def branding_lines(settings: Settings) -> list[Line]:
    """Branding; warnings for what leads would miss (on a production base URL, a
    missing imprint, privacy policy or real sender also holds marketing mail)."""
    from leadvault import branding

    logo = settings.brand_logo or "none"
    lines = [
        Line("brand", f"{settings.brand_name or '(no company name)'}, logo {logo}"),
        Line("sender", f"{settings.mail_from} (reply-to {settings.mail_reply_to or 'none'})"),
    ]
    production = branding.is_production(settings)
    label = "WARNING" if production else "warning"
    for gap in branding.gaps(settings):
        text = (
            f"{gap}: marketing mail is held until it is set"
            if production
            else f"{gap} (before going live)"
        )
        lines.append(Line(label, text, "warning"))
    lines += [Line(label, note, "warning") for note in branding.advice(settings)]
    return lines


def first_line(exc: BaseException) -> str:
    origin = getattr(exc, "orig", exc)
    return str(origin).strip().splitlines()[0][:200] if str(origin).strip() else type(exc).__name__
