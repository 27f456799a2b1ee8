"""``leadvault sales …``: salespeople and teams, through the services the console and
the admin API use (``scoring.sales_team``, ``scoring.sales_teams``), each change
audited as ``cli:<login>``. A value the service refuses (an address in use, a weight
or weekly capacity out of range, a team that handed off leads) exits 1 with its English
message; a malformed argument (not a number, a missing option, a language not in
``i18n.LANGUAGES``) exits 2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from leadvault import i18n
from leadvault.commands import Refused, app_session, load_app
from leadvault.untrusted import for_terminal
from scoring.sales_limits import CAPACITY_MAX, WEIGHT_MAX

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# Weight and capacity are plain numbers here: their range is the service's refusal (exit
# 1, its message), the same for ``add`` and ``edit`` as from the console and the API.
WEIGHT_HELP = f"Share of leads routed to them (1-{WEIGHT_MAX})."
CAPACITY_HELP = f"Leads per week at most (0-{CAPACITY_MAX})."

Decorated = TypeVar("Decorated", bound=Callable[..., Any])


class _Renamed(click.Option):
    """An option that still answers to its ``old_names`` (scripts written for them keep
    working) while its help and its errors show only its name."""

    def __init__(self, *args: Any, old_names: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.old_names = old_names

    def add_to_parser(self, parser: Any, ctx: click.Context) -> None:
        super().add_to_parser(parser, ctx)
        if self.old_names:
            parser.add_option(obj=self, opts=self.old_names, dest=self.name, nargs=self.nargs)


def _language_option(default: str | None) -> Callable[[Decorated], Decorated]:
    """``--language`` of ``add`` and ``edit`` (``--lang``, the name ``add`` had, kept
    unshown): one of i18n.LANGUAGES, refused by click (exit 2) otherwise."""
    return click.option(
        "--language",
        "language",
        cls=_Renamed,
        old_names=("--lang",),
        type=click.Choice(i18n.LANGUAGES),
        default=default,
        show_default=default is not None,
        help="The language mails to them are written in.",
    )


@click.group()
def sales() -> None:
    """Salespeople and teams (their names and addresses are stored sealed)."""


def _sales_call(func: Callable[..., object], *args: object, **kwargs: object) -> None:
    from scoring import routing

    app = load_app()
    try:
        with app_session(app) as session:
            func(session, *args, **kwargs)
    except routing.SalesError as exc:
        raise Refused(str(exc)) from None


@sales.command("add")
@click.option("--email", required=True)
@click.option("--name", required=True)
@_language_option(default=i18n.DEFAULT_LANGUAGE)
@click.option("--weight", type=int, default=1, show_default=True, help=WEIGHT_HELP)
@click.option(
    "--weekly-capacity",
    "capacity",
    cls=_Renamed,
    old_names=("--capacity",),  # add's name for it before edit's was taken for both
    type=int,
    default=50,
    show_default=True,
    help=CAPACITY_HELP,
)
@click.option("--team", "team_names", multiple=True, help="Add to this team (repeatable).")
def add(
    email: str, name: str, language: str, weight: int, capacity: int, team_names: tuple[str, ...]
) -> None:
    """Add a salesperson (audited)."""
    from leadvault import audit
    from scoring import routing, sales_team, sales_teams

    def run(session: Session) -> None:
        teams = [routing.named_team(session, team).id for team in team_names]
        added = sales_team.add_person(
            session,
            actor=audit.cli_actor(),
            email=email,
            name=name,
            language=language,
            weight=weight,
            weekly_capacity=capacity,
        )
        for team_id in teams:
            sales_teams.add_member(session, team_id, added.id, actor=audit.cli_actor())

    _sales_call(run)
    click.echo(f"Salesperson {email} added.")


@sales.command("edit")
@click.argument("current_email", metavar="EMAIL")
@click.option("--name", help="The new name.")
@click.option("--email", "new_email", help="The new address (no other salesperson's).")
@_language_option(default=None)
@click.option("--weight", type=int, help=WEIGHT_HELP)
@click.option("--weekly-capacity", type=int, help=CAPACITY_HELP)
@click.option(
    "--active/--inactive",
    default=None,
    help="Routed to again / no longer routed to (kept on record, never deleted).",
)
def edit(
    current_email: str,
    name: str | None,
    new_email: str | None,
    language: str | None,
    weight: int | None,
    weekly_capacity: int | None,
    active: bool | None,
) -> None:
    """Change a salesperson (audited): name, address, language, weight, weekly capacity,
    active or not. Their open handoffs stay theirs; the next mails about them go to the
    new address."""
    from leadvault import audit
    from scoring import routing, sales_team
    from scoring.unrouted import Unrouted, in_active_rules, warning

    given = (name, new_email, language, weight, weekly_capacity, active)
    if all(value is None for value in given):
        raise click.UsageError(
            "give at least one of --name, --email, --language, --weight, --weekly-capacity, "
            "--active/--inactive"
        )
    unrouted: list[Unrouted] = []

    def run(session: Session) -> None:
        found = routing.named_person(session, current_email)
        sales_team.update_person(
            session,
            found.id,
            actor=audit.cli_actor(),
            name=name,
            email=new_email,
            language=language,
            weight=weight,
            weekly_capacity=weekly_capacity,
            active=active,
        )
        unrouted.extend(in_active_rules(session))

    _sales_call(run)
    click.echo(f"Salesperson {for_terminal(new_email or current_email)} changed.")
    if unrouted:
        click.echo(for_terminal(warning(unrouted) + "; update the rules file."), err=True)


@sales.command("list")
def list_() -> None:
    """List salespeople with their load this week."""
    from scoring import routing

    app = load_app()
    with app_session(app) as session:
        for person in routing.people(session):
            state = "absent" if person.absent else "present"
            load_ = routing.weekly_load(session, person.id)
            who = routing.contact(session, person)
            click.echo(
                f"{for_terminal(who.email):32} {for_terminal(who.name):24} {person.language} "
                f"w={person.weight} {load_}/{person.weekly_capacity} this week  {state}"
            )
        for team, members in routing.teams(session):
            names = ", ".join(routing.contact(session, m).email for m in members) or "(nobody)"
            click.echo(f"team {team.name} ({team.strategy}): {names}")


@sales.command("absent")
@click.argument("email")
@click.option("--back", is_flag=True, help="Mark as present again.")
def absent(email: str, back: bool) -> None:
    """Mark a salesperson absent (skipped by routing) or back (audited)."""
    from leadvault import audit
    from scoring import routing, sales_team

    def run(session: Session) -> None:
        found = routing.named_person(session, email)
        sales_team.update_person(session, found.id, actor=audit.cli_actor(), absent=not back)

    _sales_call(run)
    click.echo(f"{email} is {'present' if back else 'absent'}.")


@sales.group("team")
def team() -> None:
    """Teams of salespeople."""


@team.command("add")
@click.argument("name")
@click.option(
    "--strategy",
    type=click.Choice(["round_robin", "least_loaded"]),
    default="round_robin",
    show_default=True,
)
def team_add(name: str, strategy: str) -> None:
    """Create a team (a name of lower-case letters, digits, _ or -, as rules name it)."""
    from marshmallow import ValidationError

    from leadvault import audit
    from scoring import sales_teams, schemas

    # The console's and the API's schema: the command line made teams named "" or
    # "DACH Team", which a rules file (a team's name in TOML) cannot refer to.
    try:
        schemas.TeamInSchema().load({"name": name, "strategy": strategy})
    except ValidationError as exc:
        messages = exc.normalized_messages().get("name", ["not a team name"])
        raise click.BadParameter(str(messages[0]), param_hint="NAME") from None
    _sales_call(sales_teams.add_team, name, strategy, actor=audit.cli_actor())
    click.echo(f"Team {name} ({strategy}) created.")


@team.command("member")
@click.argument("name")
@click.argument("email")
def team_member(name: str, email: str) -> None:
    """Add a salesperson to a team (audited)."""
    from scoring import sales_teams

    _membership(sales_teams.add_member, name, email)
    click.echo(f"{for_terminal(email)} is in team {for_terminal(name)}.")


@team.command("remove")
@click.argument("name")
@click.argument("email")
def team_remove(name: str, email: str) -> None:
    """Take a salesperson out of a team (audited)."""
    from scoring import sales_teams

    _membership(sales_teams.remove_member, name, email)
    click.echo(f"{for_terminal(email)} is no longer in team {for_terminal(name)}.")


def _membership(change: Callable[..., object], name: str, email: str) -> None:
    """``change(session, team_id, person_id)`` for the team and salesperson named."""
    from leadvault import audit
    from scoring import routing

    def run(session: Session) -> None:
        team_id = routing.named_team(session, name).id
        person_id = routing.named_person(session, email).id
        change(session, team_id, person_id, actor=audit.cli_actor())

    _sales_call(run)


@team.command("strategy")
@click.argument("name")
@click.argument("strategy", metavar="STRATEGY")
def team_strategy(name: str, strategy: str) -> None:
    """Set how a team shares its leads: round_robin or least_loaded (audited)."""
    from leadvault import audit
    from scoring import routing, sales_teams

    def run(session: Session) -> None:
        team_id = routing.named_team(session, name).id
        sales_teams.update_team(session, team_id, strategy=strategy, actor=audit.cli_actor())

    _sales_call(run)
    click.echo(f"Team {for_terminal(name)} shares leads by {strategy}.")


@team.command("delete")
@click.argument("name")
def team_delete(name: str) -> None:
    """Delete a team nobody was offered a lead through (audited); a team that handed off
    leads is kept: take it out of the routing rules instead."""
    from leadvault import audit
    from scoring import routing, sales_teams

    def run(session: Session) -> None:
        team_id = routing.named_team(session, name).id
        sales_teams.delete_team(session, team_id, actor=audit.cli_actor())

    _sales_call(run)
    click.echo(f"Team {for_terminal(name)} deleted.")
