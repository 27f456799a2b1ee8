"""``leadvault users``: staff accounts from the server's command line.

Changes are audited as the person at the command line (``cli:<login name>``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import click
from sqlalchemy.orm import Session

from admin.models import Role, User
from leadvault.commands import (
    DAY,
    FINITE,
    ROW_ID,
    Refused,
    app_session,
    load_app,
    refuse_empty_span,
    refuse_unknown,
)
from scoring.cli import GRADE_CODES, STAGE_CODES

ROLE_NAMES = [role.value for role in Role]


@click.group()
def users() -> None:
    """Staff accounts: add, list, change roles, disable, reset passwords, TOTP policy."""


def _find(session: Session, email: str) -> User:
    from admin import accounts

    user = accounts.find(session, email)
    if user is None:
        raise Refused("no account with this address")
    return user


@users.command("add")
@click.argument("email")
@click.option(
    "--role", required=True, type=click.Choice(ROLE_NAMES), help="What the account may do"
)
@click.option("--salesperson", type=ROW_ID, help="For --role sales: the salesperson's id")
def users_add(email: str, role: str, salesperson: int | None) -> None:
    """Create an account and print its one-time set-password link."""
    from admin import accounts
    from leadvault import audit

    app = load_app()
    try:
        with app_session(app) as session:
            user = accounts.create(
                session, email, role, actor=audit.cli_actor(), salesperson_id=salesperson
            )
            link = accounts.setup_link(session, user)
            hours = session.info["settings"].admin_set_password_hours
    except accounts.AccountError as exc:
        raise Refused(str(exc)) from None
    click.echo(f"Account {user.id} ({role}) created. Send this link to its owner; it works once")
    click.echo(f"and for {hours} hours:")
    click.echo(link)


@users.command("list")
def users_list() -> None:
    """Every account: id, address, role, state, TOTP, last sign-in."""
    from admin import accounts

    app = load_app()
    with app_session(app) as session:
        rows = accounts.listing(session)
    if not rows:
        click.echo(
            "No accounts yet. Create the first owner: leadvault users add EMAIL --role owner"
        )
        return
    for row in rows:
        last = f"{row.last_login_at:%Y-%m-%d %H:%M}Z" if row.last_login_at else "never"
        totp = "totp" if row.totp else "no-totp"
        click.echo(f"{row.id:>4}  {row.email:40} {row.role:9} {row.state:8} {totp:7} last {last}")


@users.command("role")
@click.argument("email")
@click.argument("role", type=click.Choice(ROLE_NAMES))
@click.option("--salesperson", type=ROW_ID, help="For sales: the salesperson's id")
def users_role(email: str, role: str, salesperson: int | None) -> None:
    """Change an account's role (takes effect at its next request)."""
    from admin import accounts
    from leadvault import audit

    app = load_app()
    try:
        with app_session(app) as session:
            user = _find(session, email)
            accounts.change_role(
                session,
                user,
                role,
                actor=audit.cli_actor(),
                salesperson_id=salesperson,
            )
    except accounts.AccountError as exc:
        raise Refused(str(exc)) from None
    click.echo(f"Role changed to {role}.")


@users.command("disable")
@click.argument("email")
def users_disable(email: str) -> None:
    """Disable an account: its sign-ins end and its API tokens stop working."""
    from admin import accounts
    from leadvault import audit

    app = load_app()
    try:
        with app_session(app) as session:
            accounts.disable(session, _find(session, email), actor=audit.cli_actor())
    except accounts.AccountError as exc:
        raise Refused(str(exc)) from None
    click.echo("Account disabled; its sign-ins ended.")


@users.command("reset-password")
@click.argument("email")
def users_reset_password(email: str) -> None:
    """Clear the password, end every sign-in and print a new set-password link."""
    from admin import accounts
    from leadvault import audit

    app = load_app()
    with app_session(app) as session:
        user = _find(session, email)
        if not user.active:
            raise Refused("this account is disabled")
        link = accounts.reset_password(session, user, actor=audit.cli_actor())
    click.echo("Password cleared and every sign-in ended. The new set-password link:")
    click.echo(link)


@users.command("reset-totp")
@click.argument("email")
def users_reset_totp(email: str) -> None:
    """Remove an account's authenticator app (a lost phone); its sign-ins end."""
    from admin import two_factor
    from leadvault import audit

    app = load_app()
    with app_session(app) as session:
        two_factor.remove_totp(session, _find(session, email), actor=audit.cli_actor())
    click.echo("Authenticator app removed; the account signs in with its password again.")


@users.command("require-totp")
@click.argument("state", type=click.Choice(["on", "off"]))
def users_require_totp(state: str) -> None:
    """Make a code from an authenticator app mandatory for every sign-in (or not)."""
    from admin import two_factor
    from leadvault import audit

    app = load_app()
    with app_session(app) as session:
        two_factor.require_totp(session, state == "on", actor=audit.cli_actor())
    click.echo(
        "Every sign-in now needs an authenticator code; accounts without one set it up at"
        " their next sign-in."
        if state == "on"
        else "Authenticator codes are optional again."
    )


# --- leads (same services as the API: admin.leads) ------------------------------------


def _lead_of(session: Session, ident: str | None, email: str | None) -> Any:
    import uuid

    from admin import leads as lead_service

    if (ident is None) == (email is None):
        raise Refused("give a lead id or --email (one of them)")
    if email is not None:
        found = lead_service.lookup(session, email)
    else:
        try:
            found = lead_service.get(session, uuid.UUID(ident or ""))
        except ValueError:
            raise Refused("this is not a lead id") from None
    if found is None:
        raise Refused("no such lead (it may have been erased)")
    return found


@click.command("list")
@click.option(
    "--stage", "stages", multiple=True, callback=STAGE_CODES, help="new, mql, sal, sql, won, lost …"
)
@click.option("--reached", callback=STAGE_CODES, help="A stage the lead reached at some time")
@click.option("--grade", "grades", multiple=True, callback=GRADE_CODES, help="A, B, C or D")
@click.option("--form", help="A form's public id")
@click.option("--utm-source")
@click.option("--utm-campaign")
@click.option(
    "--first-touch",
    is_flag=True,
    help="Form and UTM values of the first touch only ('-' for none), not of any submission",
)
@click.option("--purpose", help="With --purpose-state: newsletter, sales_contact …")
@click.option("--purpose-state", type=click.Choice(["none", "pending", "granted", "withdrawn"]))
@click.option("--suspect/--not-suspect", default=None)
@click.option("--score-min", type=FINITE)
@click.option("--score-max", type=FINITE)
@click.option("--created-from", type=DAY, help="UTC day, inclusive")
@click.option("--created-to", type=DAY, help="UTC day, exclusive")
@click.option("--sort", type=click.Choice(["created", "score"]), default="created")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100))
@click.option("--cursor", help="The cursor printed after the previous page")
def leads_list(
    stages: tuple[str, ...],
    reached: str | None,
    grades: tuple[str, ...],
    form: str | None,
    utm_source: str | None,
    utm_campaign: str | None,
    first_touch: bool,
    purpose: str | None,
    purpose_state: str | None,
    suspect: bool | None,
    score_min: float | None,
    score_max: float | None,
    created_from: dt.datetime | None,
    created_to: dt.datetime | None,
    sort: str,
    limit: int,
    cursor: str | None,
) -> None:
    """Leads, newest (or highest score) first; no personal data: ids, stage, grade,
    score, consents."""
    from admin import leads as lead_service
    from consent import service as consent_service

    refuse_empty_span(
        ("--created-from", created_from), ("--created-to", created_to), last_included=False
    )
    filters = lead_service.Filters(
        stages=stages,
        reached=reached,
        grades=grades,
        form=form,
        utm_source=utm_source,
        utm_campaign=utm_campaign,
        first_touch=first_touch,
        created_from=created_from.replace(tzinfo=dt.UTC) if created_from else None,
        created_to=created_to.replace(tzinfo=dt.UTC) if created_to else None,
        purpose=purpose,
        purpose_state=purpose_state,
        suspect=suspect,
        score_min=score_min,
        score_max=score_max,
    )
    app = load_app()
    try:
        with app_session(app) as session:
            if purpose is not None:
                refuse_unknown("--purpose", purpose, sorted(consent_service.purpose_keys(session)))
            rows, following = lead_service.list_leads(
                session, filters, sort=sort, cursor=cursor, limit=limit
            )
    except lead_service.LeadError as exc:
        raise Refused(str(exc)) from None
    for row in rows:
        consents = ",".join(f"{k}={v}" for k, v in sorted(row.consents.items())) or "-"
        click.echo(
            f"{row.id}  {row.created_at:%Y-%m-%d %H:%M}Z {row.stage:12} {row.grade} "
            f"{row.score:8.2f} {'suspect ' if row.suspect else ''}form={row.first_form or '-'} "
            f"{consents}"
        )
    if following:
        click.echo(f"more: --cursor {following}")


@click.command("show")
@click.argument("lead_id", required=False)
@click.option("--email", help="Find the lead by its address (blind index)")
@click.option(
    "--reveal", is_flag=True, help="Also print the decrypted address and profile (audited)"
)
def leads_show(lead_id: str | None, email: str | None, reveal: bool) -> None:
    """A lead's stage, grade, score and consents; personal data only with --reveal."""
    from admin import leads as lead_service
    from leadvault import audit

    app = load_app()
    with app_session(app) as session:
        lead = _lead_of(session, lead_id, email)
        facts = lead_service.detail(session, lead)
        revealed = (
            lead_service.reveal(session, lead, actor=audit.cli_actor(), ip=None) if reveal else None
        )
    click.echo(f"Lead {facts['id']} (created {facts['created_at']}, language {facts['language']})")
    click.echo(
        f"stage {facts['stage']}  grade {facts['grade']}  score {facts['score']}"
        f"{'  SUSPECT' if facts['suspect'] else ''}"
    )
    for consent in facts["consents"]:
        click.echo(f"consent {consent['purpose']}: {consent['status']}")
    for rule in facts["score_breakdown"]:
        click.echo(f"score {rule['rule']}: {rule['points']}")
    if revealed is not None:
        click.echo(f"email {revealed['email']}")
        for name, value in sorted(revealed["profile"].items()):
            click.echo(f"{name} {value}")
    else:
        click.echo(
            f"fields held: {', '.join(facts['fields']) or '-'} (--reveal shows them, audited)"
        )


@click.command("export-one")
@click.argument("lead_id", required=False)
@click.option("--email", help="Find the lead by its address (blind index)")
@click.option(
    "--output", type=click.Path(dir_okay=False, writable=True), help="File (default: stdout)"
)
def leads_export_one(lead_id: str | None, email: str | None, output: str | None) -> None:
    """Everything held about one lead as JSON (the access export); audited."""
    import json
    import os

    from admin import leads as lead_service
    from leadvault import audit

    app = load_app()
    with app_session(app) as session:
        lead = _lead_of(session, lead_id, email)
        document = lead_service.export_one(session, lead, actor=audit.cli_actor(), ip=None)
    text = json.dumps(document, ensure_ascii=False, indent=2)
    if output is None:
        click.echo(text)
        return
    descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    click.echo(f"Written to {output} (mode 0600).")


@click.group()
def dashboard() -> None:
    """The console dashboard's daily aggregates."""


@dashboard.command("rebuild")
def dashboard_rebuild() -> None:
    """Write the dashboard's aggregates afresh from every lead, in the instance's time zone
    (after changing LEADVAULT_TIME_ZONE, or should they ever disagree with the leads)."""
    import sqlalchemy as sa

    from admin import rollup
    from leadvault.app import runtime
    from leadvault.models import Lead

    app = load_app()
    zone = runtime(app).settings.zone
    with app_session(app) as session:
        total = session.scalar(sa.select(sa.func.count()).select_from(Lead)) or 0
        with click.progressbar(length=total, label="Counting leads into the dashboard") as bar:
            done = rollup.rebuild(session, zone, progress=bar.update)
    click.echo(f"The dashboard's aggregates hold {done} leads, days counted in {zone.key}.")
