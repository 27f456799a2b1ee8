"""``leadvault users``: staff accounts from the server's command line.

Changes are audited as the person at the command line (``cli:<login name>``).
"""

from __future__ import annotations

import click
from sqlalchemy.orm import Session

from admin.models import Role, User
from leadvault.commands import Refused, app_session, load_app

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
@click.option("--salesperson", type=int, help="For --role sales: the salesperson's id")
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
@click.option("--salesperson", type=int, help="For sales: the salesperson's id")
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
    from admin import accounts
    from leadvault import audit

    app = load_app()
    with app_session(app) as session:
        accounts.remove_totp(session, _find(session, email), actor=audit.cli_actor())
    click.echo("Authenticator app removed; the account signs in with its password again.")


@users.command("require-totp")
@click.argument("state", type=click.Choice(["on", "off"]))
def users_require_totp(state: str) -> None:
    """Make a code from an authenticator app mandatory for every sign-in (or not)."""
    from admin import accounts
    from leadvault import audit

    app = load_app()
    with app_session(app) as session:
        accounts.require_totp(session, state == "on", actor=audit.cli_actor())
    click.echo(
        "Every sign-in now needs an authenticator code; accounts without one set it up at"
        " their next sign-in."
        if state == "on"
        else "Authenticator codes are optional again."
    )
