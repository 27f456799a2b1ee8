"""``leadvault audit``: the staff audit trail (``leadvault.audit``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from leadvault.commands import DAY, app_session, codes_of, load_app, refuse_empty_span


@click.group()
def audit() -> None:
    """The audit trail of looks at personal data, exports, erasures and account changes."""


@audit.command("verify")
def audit_verify() -> None:
    """Check the audit trail's hash chain; exit 1 naming the first broken entry."""
    from leadvault import audit as trail

    app = load_app()
    with app_session(app) as session:
        verdict = trail.verify(session)
    if verdict.ok:
        click.echo(verdict.describe("Audit trail"))
        return
    click.echo(verdict.describe("Audit trail"), err=True)
    raise SystemExit(1)


def _catalogued(name: str) -> Any:
    """Only a code of ``audit.<name>`` (a typo would match no entry and look like an
    empty trail); the catalogue is imported when the option is given."""

    def codes() -> list[str]:
        from leadvault import audit as trail

        catalogue: type[trail.Catalogued] = getattr(trail, name)
        return sorted(catalogue.codes())

    return codes_of(codes)


@audit.command("list")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 200))
@click.option("--actor", help="user:7, cli:root …")
@click.option(
    "--action",
    callback=_catalogued("Action"),
    help="lead.revealed, auth.login_failed … (a wrong one lists them all)",
)
@click.option(
    "--object-type",
    callback=_catalogued("ObjectType"),
    help="lead, form, webhook_endpoint … (a wrong one lists them all)",
)
@click.option("--object", "object_id", help="a lead's id, a form's id …")
@click.option("--since", type=DAY, help="UTC day, inclusive")
@click.option("--until", type=DAY, help="UTC day, inclusive")
def audit_list(  # noqa: PLR0917 - click passes every option as a parameter
    limit: int,
    actor: str | None,
    action: str | None,
    object_type: str | None,
    object_id: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
) -> None:
    """The newest entries, newest first."""
    from leadvault import audit as trail
    from leadvault import days

    refuse_empty_span(("--since", since), ("--until", until), last_included=True)
    app = load_app()
    filters = trail.Filters(
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        since=days.start_of(since.date() if since else None),
        until=days.end_of(until.date() if until else None),
    )
    with app_session(app) as session:
        for entry in trail.entries(session, filters, limit=limit):
            click.echo(
                f"#{entry.id} {entry.created_at:%Y-%m-%d %H:%M:%S}Z {entry.actor} {entry.action} "
                f"{entry.object_type}:{entry.object_id or '-'} ip={entry.ip_prefix or '-'} "
                f"{entry.detail}"
            )
