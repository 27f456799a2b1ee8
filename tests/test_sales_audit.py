"""Every write to the sales team is in the audit trail (staff data: who, what, which
fields; never a name, an address or an absence's days): adding a salesperson,
changing or (de)activating one, absences, teams and their members; from the
console, the admin API and ``leadvault sales …``, shown in the console's trail by
label (German too). And a rules file naming an address no salesperson has is loaded
with a warning: ``leadvault scoring load``, the API's ``unrouted_rules`` and the
console's confirm step. Both databases."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from click.testing import CliRunner

from leadvault import audit, clock
from leadvault.cli import cli
from leadvault.models import AuditEntry
from scoring import absences, routing, rules, rulesets, sales_team, sales_teams, unrouted
from tests import factories
from tests.test_console import text
from tests.test_scoring import cli_env

uow = factories.uow
A = audit.Action
SALES = ("salesperson.", "sales_team.")


def _trail(app) -> list[tuple[str, str, str | None, dict]]:
    """(actor, action, object, detail) of the sales team's entries, oldest first."""
    with uow(app) as s:
        found = s.scalars(sa.select(AuditEntry).order_by(AuditEntry.id))
        return [
            (e.actor, e.action, f"{e.object_type}:{e.object_id}", audit.detail_of(e))
            for e in found
            if e.action.startswith(SALES)
        ]


def _actions(app) -> list[str]:
    return [action for _actor, action, _object, _detail in _trail(app)]


def _no_personal_data(app, *values: str) -> None:
    with uow(app) as s:
        stored = " ".join(
            f"{e.actor} {e.object_id} {e.detail}" for e in s.scalars(sa.select(AuditEntry))
        ).lower()
    for value in values:
        assert value.lower() not in stored


# --- the services ------------------------------------------------------------------------


def test_each_write_is_one_entry_and_a_write_that_changes_nothing_none(app):
    today = clock.now().date()
    with uow(app) as s:
        team = sales_teams.add_team(s, "dach", actor="user:7", ip="203.0.113.9")
        anna = sales_team.add_person(s, email="anna@sales.example", name="Anna", actor="user:7").id
        sales_teams.add_member(s, team.id, anna, actor="user:7")
        sales_team.update_person(s, anna, actor="user:7", weight=3, language="de")
        sales_team.update_person(s, anna, actor="user:7", weight=3, language="de", active=True)
        sales_team.update_person(s, anna, actor="user:7", active=False)
        sales_team.update_person(s, anna, actor="user:7", active=True, weekly_capacity=9)
        sales_team.update_person(s, anna, actor="cli:ops", absent=True)
        absence = absences.add_absence(s, anna, today, today + dt.timedelta(days=2), actor="u:1")
        absences.delete_absence(s, absence.id, actor="u:1")
        sales_teams.update_team(s, team.id, strategy="round_robin", actor="user:7")  # as it was
        sales_teams.update_team(s, team.id, strategy="least_loaded", actor="user:7")
        sales_teams.add_member(s, team.id, anna, actor="user:7")  # a member already
        sales_teams.remove_member(s, team.id, anna, actor="user:7")
        sales_teams.delete_team(s, team.id, actor="user:7")
    person, group = f"salesperson:{anna}", f"sales_team:{team.id}"
    assert _trail(app) == [
        ("user:7", "sales_team.added", group, {}),
        ("user:7", "salesperson.added", person, {}),
        ("user:7", "sales_team.member_added", group, {"person_id": anna}),
        ("user:7", "salesperson.changed", person, {"fields": ["language", "weight"]}),
        ("user:7", "salesperson.deactivated", person, {}),
        ("user:7", "salesperson.changed", person, {"fields": ["weekly_capacity"]}),
        ("user:7", "salesperson.activated", person, {}),
        ("cli:ops", "salesperson.changed", person, {"fields": ["absent"]}),
        ("u:1", "salesperson.absence_added", person, {"absence_id": absence.id}),
        ("u:1", "salesperson.absence_deleted", person, {"absence_id": absence.id}),
        ("user:7", "sales_team.changed", group, {"fields": ["strategy"]}),
        ("user:7", "sales_team.member_removed", group, {"person_id": anna}),
        ("user:7", "sales_team.deleted", group, {}),
    ]
    _no_personal_data(app, "anna@sales.example", "Anna", today.isoformat())
    with uow(app) as s:
        first = s.scalars(sa.select(AuditEntry).order_by(AuditEntry.id)).first()
        assert first.ip_prefix == "203.0.113.0"
        assert audit.verify(s).ok


def test_a_refused_write_leaves_no_entry(app):
    anna = factories.salesperson(app, "anna@sales.example", "Anna")
    with uow(app) as s:
        for call in (
            lambda: sales_team.update_person(s, anna, actor="u:1", weight=0),
            lambda: sales_team.update_person(s, anna, actor="u:1", name="Anna", weight=0),
            lambda: sales_teams.add_team(s, "x", "fastest", actor="u:1"),
            lambda: sales_teams.remove_member(s, 999, anna, actor="u:1"),
            lambda: absences.delete_absence(s, 999, actor="u:1"),
        ):
            try:
                call()
            except routing.SalesError:
                pass
            else:
                raise AssertionError("not refused")
    assert _trail(app) == []


# --- the console -------------------------------------------------------------------------


def test_the_console_records_each_change_and_its_trail_reads_them(app):
    client, user_id = factories.signed_in_client(app, "owner")
    csrf = factories.csrf_token(client, "/console/sales")
    me = f"user:{user_id}"

    def post(url: str, **form: str) -> None:
        answer = client.post(url, data={"csrf_token": csrf, **form})
        assert answer.status_code == 302, text(answer)

    post("/console/sales/teams", name="dach", strategy="round_robin")
    post("/console/sales/people", email="anna@sales.example", name="Anna", weight="1")
    with uow(app) as s:
        anna = routing.person_by_email(s, "anna@sales.example").id
        team = routing.team_by_name(s, "dach").id
    person = {"name": "Anna", "email": "anna@sales.example", "language": "en"}
    # The form sends every field; only what changed is recorded. No "active": deactivated.
    post(f"/console/sales/people/{anna}", **person, weight="2", weekly_capacity="50")
    post(f"/console/sales/people/{anna}", **person, weight="2", weekly_capacity="50", active="1")
    today = clock.now().date()
    post("/console/sales/absences", person_id=str(anna), starts_on=str(today), ends_on=str(today))
    with uow(app) as s:
        absence = absences.absences(s)[0].id
    post(f"/console/sales/absences/{absence}/delete")
    post(f"/console/sales/teams/{team}", action="strategy", strategy="least_loaded")
    post(f"/console/sales/teams/{team}", action="add_member", person_id=str(anna))
    post(f"/console/sales/teams/{team}", action=f"remove:{anna}")
    post(f"/console/sales/teams/{team}", action="delete")
    assert {actor for actor, *_ in _trail(app)} == {me}
    assert _actions(app) == [
        "sales_team.added",
        "salesperson.added",
        "salesperson.changed",
        "salesperson.deactivated",
        "salesperson.activated",
        "salesperson.absence_added",
        "salesperson.absence_deleted",
        "sales_team.changed",
        "sales_team.member_added",
        "sales_team.member_removed",
        "sales_team.deleted",
    ]
    assert _trail(app)[2][3] == {"fields": ["weight"]}
    _no_personal_data(app, "anna@sales.example", "Anna", today.isoformat())

    trail = text(client.get("/console/privacy?lang=de")).split('id="h-audit"')[1]
    for label in (
        "Vertriebsperson angelegt",
        "Vertriebsperson geändert",
        "Vertriebsperson deaktiviert",
        "Vertriebsperson wieder aktiv",
        "Abwesenheit einer Vertriebsperson geplant",
        "Abwesenheit einer Vertriebsperson gelöscht",
        "Vertriebsteam angelegt",
        "Strategie eines Vertriebsteams geändert",
        "Vertriebsperson einem Team hinzugefügt",
        "Vertriebsperson aus einem Team genommen",
        "Vertriebsteam gelöscht",
    ):
        assert f">{label}</span>" in trail, label
    # The team is gone: named by number; the salesperson by number, linked.
    assert f"#{team} (entfernt)" in trail
    assert f'<a href="/console/sales/people/{anna}">#{anna}</a>' in trail
    offered = text(client.get("/console/privacy"))
    assert '<option value="sales_team.member_added"' in offered


def test_the_trail_names_a_team_by_its_name(app):
    client, _user = factories.signed_in_client(app, "owner")
    with uow(app) as s:
        sales_teams.add_team(s, "inbound", actor="user:1")
    trail = text(client.get("/console/privacy?action=sales_team.added")).split('id="h-audit"')[1]
    assert '<a href="/console/sales">inbound</a>' in trail and ">Sales team created</span>" in trail


# --- the admin API -----------------------------------------------------------------------


def test_the_api_records_each_change_by_the_tokens_account(app, client):
    owner = {"Authorization": f"Bearer {factories.personal_token(app, 'owner')}"}

    def call(method: str, url: str, status: int, **body: object) -> dict:
        answer = client.open(f"/api/v1{url}", method=method, json=body or None, headers=owner)
        assert answer.status_code == status, answer.get_data(as_text=True)
        return answer.get_json() if answer.data else {}

    team = call("POST", "/teams", 201, name="dach")["id"]
    anna = call("POST", "/salespeople", 201, email="a@sales.example", name="A", team_ids=[team])
    anna = anna["id"]
    call("PATCH", f"/salespeople/{anna}", 200, weekly_capacity=5, active=True)
    call("DELETE", f"/salespeople/{anna}", 204)
    call("DELETE", f"/salespeople/{anna}", 204)  # inactive already: nothing changes
    call("PATCH", f"/salespeople/{anna}", 200, active=True)
    today = clock.now().date().isoformat()
    absence = call("POST", "/absences", 201, person_id=anna, starts_on=today, ends_on=today)["id"]
    call("DELETE", f"/absences/{absence}", 204)
    call("PATCH", f"/teams/{team}", 200, strategy="least_loaded")
    call("DELETE", f"/teams/{team}/members/{anna}", 204)
    call("POST", f"/teams/{team}/members", 200, person_id=anna)
    call("DELETE", f"/teams/{team}", 204)
    trail = _trail(app)
    assert len({actor for actor, *_ in trail}) == 1 and trail[0][0].startswith("user:")
    assert _actions(app) == [
        "sales_team.added",
        "salesperson.added",
        "sales_team.member_added",
        "salesperson.changed",
        "salesperson.deactivated",
        "salesperson.activated",
        "salesperson.absence_added",
        "salesperson.absence_deleted",
        "sales_team.changed",
        "sales_team.member_removed",
        "sales_team.member_added",
        "sales_team.deleted",
    ]
    assert trail[3][3] == {"fields": ["weekly_capacity"]}
    _no_personal_data(app, "a@sales.example", today)


# --- the command line --------------------------------------------------------------------


def test_sales_commands_are_recorded_by_the_login_name(app):
    runner = CliRunner()
    env = cli_env(app)

    def run(*args: str) -> None:
        result = runner.invoke(cli, ["sales", *args], env=env, obj=app)
        assert result.exit_code == 0, result.output

    run("team", "add", "dach")
    run("add", "--email", "c@sales.example", "--name", "Carla", "--team", "dach")
    run("add", "--email", "d@sales.example", "--name", "Dora")
    run("team", "member", "dach", "d@sales.example")
    run("absent", "c@sales.example")
    run("absent", "c@sales.example")  # absent already: nothing changes
    run("absent", "c@sales.example", "--back")
    run("edit", "d@sales.example", "--name", "Dora B")
    unknown = runner.invoke(cli, ["sales", "add", "--email", "e@sales.example", "--name", "E",
                                  "--team", "nope"], env=env, obj=app)  # fmt: skip
    assert unknown.exit_code == 1 and "There is no team “nope”" in unknown.output
    assert {actor for actor, *_ in _trail(app)} == {audit.cli_actor()}
    with uow(app) as s:
        carla = routing.person_by_email(s, "c@sales.example").id
        dora = routing.person_by_email(s, "d@sales.example").id
    assert [(action, detail) for _actor, action, _object, detail in _trail(app)] == [
        ("sales_team.added", {}),
        ("salesperson.added", {}),
        ("sales_team.member_added", {"person_id": carla}),
        ("salesperson.added", {}),
        ("sales_team.member_added", {"person_id": dora}),
        ("salesperson.changed", {"fields": ["absent"]}),
        ("salesperson.changed", {"fields": ["absent"]}),
        ("salesperson.changed", {"fields": ["name"]}),
    ]
    _no_personal_data(app, "c@sales.example", "Carla", "Dora")


# --- rules naming an address no salesperson has -------------------------------------------

VIP = '[[routing]]\nname = "vip"\nwhen = { country = "DE" }\nsalesperson = "vip@sales.example"\n'
UNROUTED = rules.example_text() + "\n" + VIP


def test_one_function_names_the_rules_and_addresses(app):
    with uow(app) as s:
        assert unrouted.in_text(s, UNROUTED) == [unrouted.Unrouted("vip", "vip@sales.example")]
        fallback = UNROUTED.replace('team = "inbound"', 'salesperson = "Nobody@Sales.example"')
        assert [u.rule for u in unrouted.in_text(s, fallback)] == ["vip", "fallback"]
    factories.salesperson(app, "VIP@sales.example", "Vera")
    with uow(app) as s:
        assert unrouted.in_text(s, UNROUTED) == []


def test_scoring_load_warns_and_loads(app, tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(UNROUTED, encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(cli, ["scoring", "load", str(path)], env=cli_env(app), obj=app)
    assert result.exit_code == 0, result.output
    assert "Rules version 1 active" in result.stdout
    assert "Warning" not in result.stdout
    assert "vip (vip@sales.example)" in result.stderr
    factories.salesperson(app, "vip@sales.example", "Vera")
    again = runner.invoke(cli, ["scoring", "load", str(path)], env=cli_env(app), obj=app)
    assert again.exit_code == 0 and again.stderr == ""


def test_the_api_answers_the_unrouted_rules(app, client):
    headers = {"Authorization": f"Bearer {factories.personal_token(app, 'owner')}"}
    url = "/api/v1/scoring/rules/activate"
    created = client.post(url, json={"text": UNROUTED}, headers=headers)
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["unrouted_rules"] == [
        {"rule": "vip", "salesperson": "vip@sales.example"}
    ]
    restored = client.post(url, json={"version": 1}, headers=headers).get_json()
    assert restored["version"] == 2 and restored["unrouted_rules"][0]["rule"] == "vip"
    document = client.get("/api/v1/openapi.json", headers=headers).get_json()
    schema = document["paths"]["/scoring/rules/activate"]["post"]["responses"]["201"]
    described = schema["content"]["application/json"]["schema"]
    name = described["$ref"].rsplit("/", 1)[1]
    assert "unrouted_rules" in document["components"]["schemas"][name]["required"]


def test_the_console_confirm_step_names_them(app):
    client, _user = factories.signed_in_client(app, "owner")
    csrf = factories.csrf_token(client, "/console/scoring")
    page = text(
        client.post("/console/scoring/confirm", data={"csrf_token": csrf, "text": UNROUTED})
    )
    assert 'id="confirm-unrouted"' in page
    assert "<code>vip</code> → vip@sales.example" in page
    clean = client.post(
        "/console/scoring/confirm", data={"csrf_token": csrf, "text": rules.example_text()}
    )
    assert 'id="confirm-unrouted"' not in text(clean)
    with uow(app) as s:
        rulesets.activate(s, UNROUTED, actor="user:1")
    german = text(client.get("/console/scoring/versions/1/restore?lang=de"))
    assert 'id="confirm-unrouted"' in german and "keine Vertriebsperson" in german
