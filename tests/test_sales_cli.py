"""``leadvault sales edit`` changes what the console and the API change (language, weight,
weekly capacity, active), and ``leadvault sales team remove/strategy/delete`` do what
their console buttons do: through the same services, audited as ``cli:<login>``,
refused with the service's English message (exit 1) or as a malformed argument
(exit 2), leaving nothing changed and nothing recorded. Both databases."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from click.testing import CliRunner, Result

from leadvault import audit
from leadvault.cli import cli
from leadvault.models import AuditEntry
from scoring import routing, sales_teams
from scoring.models import Handoff
from tests import factories
from tests.test_scoring import cli_env

uow = factories.uow
SALES = ("salesperson.", "sales_team.")


def _trail(app) -> list[tuple[str, str, str, dict]]:
    """(actor, action, object, detail) of the sales team's entries, oldest first."""
    with uow(app) as s:
        found = s.scalars(sa.select(AuditEntry).order_by(AuditEntry.id))
        return [
            (e.actor, e.action, f"{e.object_type}:{e.object_id}", audit.detail_of(e))
            for e in found
            if e.action.startswith(SALES)
        ]


def _sales(app):
    runner, env = CliRunner(), cli_env(app)

    def run(*args: str) -> Result:
        return runner.invoke(cli, ["sales", *args], env=env, obj=app)

    return run


def _state(app, email: str) -> tuple[str, int, int, bool]:
    with uow(app) as s:
        found = routing.person_by_email(s, email)
        return found.language, found.weight, found.weekly_capacity, found.active


def test_sales_edit_changes_every_field_the_console_changes(app):
    anna = factories.salesperson(app, "anna@sales.example", "Anna")
    sales = _sales(app)
    changed = sales(
        "edit", "anna@sales.example", "--language", "de", "--weight", "3",
        "--weekly-capacity", "0",
    )  # fmt: skip
    assert changed.exit_code == 0, changed.output
    assert "Salesperson anna@sales.example changed." in changed.output
    assert _state(app, "anna@sales.example") == ("de", 3, 0, True)
    assert sales("edit", "anna@sales.example", "--inactive").exit_code == 0
    assert _state(app, "anna@sales.example")[3] is False
    again = sales("edit", "anna@sales.example", "--inactive", "--weight", "3")
    assert again.exit_code == 0  # the same values: nothing changes, nothing recorded
    assert sales("edit", "anna@sales.example", "--active", "--weight", "100").exit_code == 0
    assert _state(app, "anna@sales.example") == ("de", 100, 0, True)
    person, me = f"salesperson:{anna}", audit.cli_actor()
    assert _trail(app) == [
        (me, "salesperson.changed", person, {"fields": ["language", "weekly_capacity", "weight"]}),
        (me, "salesperson.deactivated", person, {}),
        (me, "salesperson.changed", person, {"fields": ["weight"]}),
        (me, "salesperson.activated", person, {}),
    ]


def test_sales_edit_refuses_what_the_console_refuses(app):
    factories.salesperson(app, "anna@sales.example", "Anna")
    factories.salesperson(app, "ben@sales.example", "Ben")
    sales = _sales(app)
    refused = {
        ("--weight", "0"): "The weight must be at least 1.",
        ("--weight", "101"): "The weight must be at most 100.",
        ("--weekly-capacity", "-1"): "The weekly capacity must be at least 0.",
        ("--weekly-capacity", "10001"): "The weekly capacity must be at most 10000.",
        ("--email", "ben@sales.example"): "A salesperson with this address exists already.",
        # A refused field refuses the whole change: the valid one is not stored either.
        ("--language", "de", "--weight", "0"): "The weight must be at least 1.",
    }
    for args, message in refused.items():
        result = sales("edit", "anna@sales.example", *args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    unknown = sales("edit", "nobody@sales.example", "--weight", "2")
    assert unknown.exit_code == 1 and "Traceback" not in unknown.output
    for args in (("--weight", "many"), ("--weekly-capacity", "1.5"), ()):
        result = sales("edit", "anna@sales.example", *args)
        assert result.exit_code == 2, (args, result.output)
    # A language not offered is malformed, as for `sales add` (one option, one message).
    bad_language = "Invalid value for '--language': 'fr' is not one of 'en', 'de'."
    for command in (
        ("edit", "anna@sales.example", "--language", "fr"),
        ("edit", "anna@sales.example", "--lang", "fr"),
        ("add", "--email", "carla@sales.example", "--name", "Carla", "--language", "fr"),
        ("add", "--email", "carla@sales.example", "--name", "Carla", "--lang", "fr"),
    ):
        result = sales(*command)
        assert result.exit_code == 2, (command, result.output)
        assert bad_language in result.output, (command, result.output)
    assert _state(app, "anna@sales.example") == ("en", 1, 50, True)
    assert _trail(app) == []


def test_team_commands_remove_set_the_strategy_and_delete(app):
    sales = _sales(app)
    for args in (
        ("add", "--email", "anna@sales.example", "--name", "Anna"),
        ("team", "add", "dach"),
        ("team", "member", "dach", "anna@sales.example"),
        ("team", "strategy", "dach", "least_loaded"),
        ("team", "strategy", "dach", "least_loaded"),  # as it is: nothing recorded
        ("team", "remove", "dach", "anna@sales.example"),
    ):
        result = sales(*args)
        assert result.exit_code == 0, (args, result.output)
    with uow(app) as s:
        anna = routing.person_by_email(s, "anna@sales.example").id
        [row] = sales_teams.team_rows(s)
        assert (row.strategy, row.members) == ("least_loaded", ())
    refused = {
        ("strategy", "dach", "fastest"): "The strategy must be one of round_robin, least_loaded.",
        ("remove", "dach", "anna@sales.example"): f"Salesperson {anna} is not in this team.",
        ("remove", "nope", "anna@sales.example"): "There is no team “nope”.",
        ("delete", "nope"): "There is no team “nope”.",
    }
    for args, message in refused.items():
        result = sales("team", *args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output, (args, result.output)
    assert sales("team", "strategy", "dach").exit_code == 2
    deleted = sales("team", "delete", "dach")
    assert deleted.exit_code == 0 and "Team dach deleted." in deleted.output
    with uow(app) as s:
        assert sales_teams.team_rows(s) == []
    me, group = audit.cli_actor(), f"sales_team:{row.id}"
    assert [entry for entry in _trail(app) if entry[1].startswith("sales_team.")] == [
        (me, "sales_team.added", group, {}),
        (me, "sales_team.member_added", group, {"person_id": anna}),
        (me, "sales_team.changed", group, {"fields": ["strategy"]}),
        (me, "sales_team.member_removed", group, {"person_id": anna}),
        (me, "sales_team.deleted", group, {}),
    ]


def test_a_team_that_handed_off_leads_is_not_deleted(app):
    lead_id = factories.lead(app)
    with uow(app) as s:
        team = sales_teams.add_team(s, "inbound", actor="cli:test")
        s.add(
            Handoff(
                id=uuid.uuid4(), lead_id=lead_id, team_id=team.id, routing_rule="x", status="queued"
            )
        )
    result = _sales(app)("team", "delete", "inbound")
    assert result.exit_code == 1
    assert "The team “inbound” has handed off leads" in result.output
    with uow(app) as s:
        assert [row.name for row in sales_teams.team_rows(s)] == ["inbound"]
    assert [action for _actor, action, *_ in _trail(app)] == ["sales_team.added"]
