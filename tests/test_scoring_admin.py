"""Rule versions, the sales team and the handoff board as staff use them (issue 11 §4,
issue 12 §6): the services and the admin API over them, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import sqlalchemy as sa

from leadvault import clock
from leadvault.models import AuditEntry
from scoring import absences, handoff_board, routing, rules, rulesets, sales_team, sales_teams
from scoring.models import Handoff, LeadScore, RuleSet, Stage, StageChange
from tests import factories
from tests.test_scoring import contact_form, new_lead, record

uow = factories.uow
EXAMPLE = rules.example_text()
# Grade A from 25 fit points instead of 40: a company address with a target country
# and a decision maker's title (30 points, grade B under the example) becomes A.
EASY_GRADES = EXAMPLE.replace("A = 40\n", "A = 25\n", 1)
# MQL from 10 engagement points instead of 35.
EASY_MQL = EXAMPLE.replace("mql_score = 35", "mql_score = 10", 1)
BAD_LINE = EXAMPLE.splitlines().index("points = 20") + 1  # pricing_page's points


def _graded_lead(app, form_id):
    """A grade-B lead (30 fit points) with 25 engagement points: no MQL under the example."""
    lead_id = new_lead(
        app,
        form_id,
        factories.unique_email("grade"),
        profile={"job_title": "CTO", "country": "DE", "company_size": "10-49"},
    )
    record(app, lead_id, "page_view", {"category": "pricing"})
    record(app, lead_id, "page_view", {"category": "product"})
    return lead_id


def _state(app, lead_id):
    with uow(app) as s:
        row = s.get(LeadScore, lead_id)
        return row.fit_grade, row.stage, row.score


# --- validate ----------------------------------------------------------------------


def test_validate_names_the_line():
    bad = EXAMPLE.replace("points = 20\n", "points = -\n", 1)
    problem = rulesets.validate(bad)
    assert problem is not None
    assert problem.line == BAD_LINE
    assert str(problem).startswith(f"line {BAD_LINE}: ")
    unknown = rulesets.validate(EXAMPLE + "\n[nonsense]\nx = 1\n")
    assert unknown is not None and "unknown section 'nonsense'" in unknown.reason()
    assert unknown.line == len(EXAMPLE.splitlines()) + 2
    assert rulesets.validate(EXAMPLE) is None


# --- dry run and activation --------------------------------------------------------


def test_dry_run_counts_what_activation_then_does_and_writes_nothing(app):
    form_id = contact_form(app)
    lead_id = _graded_lead(app, form_id)
    untouched = new_lead(app, form_id, factories.unique_email("plain"))
    before = _state(app, lead_id)
    assert before[:2] == ("B", Stage.NEW)

    with uow(app) as s:
        same = rulesets.dry_run(s, EXAMPLE)
        assert (same.grade_changes, same.promotions, same.score_changes) == (0, 0, 0)
        assert same.checked == same.total >= 2 and same.complete
        grades = rulesets.dry_run(s, EASY_GRADES)
        assert grades.grade_moves == {"B>A": 1}
        assert grades.promotions == 0
        mql = rulesets.dry_run(s, EASY_MQL)
        assert (mql.grade_changes, mql.promotions) == (0, 1)
        partial = rulesets.dry_run(s, EASY_MQL, limit=1)
        assert (partial.checked, partial.complete) == (1, False)
    with uow(app) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(RuleSet)) == 0
        assert s.scalar(sa.select(sa.func.count()).select_from(StageChange)) == 0
    assert _state(app, lead_id) == before

    with uow(app) as s:
        row = rulesets.activate(s, EASY_MQL, actor="user:1", ip="203.0.113.9")
        assert (row.version, row.active) == (1, True)
    assert _state(app, lead_id)[1] == Stage.MQL  # the one lead the dry run counted
    assert _state(app, untouched)[1] == Stage.NEW
    with uow(app) as s:
        entry = s.scalars(
            sa.select(AuditEntry).where(AuditEntry.action == rulesets.ACTIVATED)
        ).one()
        assert (entry.actor, entry.object_type, entry.object_id) == ("user:1", "rule_set", "1")


def test_activation_regrades_and_refuses_bad_files_whole(app):
    form_id = contact_form(app)
    lead_id = _graded_lead(app, form_id)
    with uow(app) as s:
        rulesets.activate(s, EASY_GRADES, actor="user:1")
    assert _state(app, lead_id)[0] == "A"
    with pytest.raises(rules.RulesError, match=rf"console:{BAD_LINE}:"), uow(app) as s:
        rulesets.activate(s, EASY_GRADES.replace("points = 20\n", "points = x\n"), actor="user:1")
    with uow(app) as s:
        assert [r.version for r in rulesets.history(s)] == [1]
        assert rules.active(s).grades["A"] == 25


def test_history_diff_and_restore(app):
    with uow(app) as s:
        rulesets.activate(s, EXAMPLE, actor="user:1")
        rulesets.activate(s, EASY_MQL, actor="user:1")
    with uow(app) as s:
        assert [(r.version, r.active) for r in rulesets.history(s)] == [(2, True), (1, False)]
        assert [r.version for r in rulesets.history(s, before=2)] == [1]
        lines = rulesets.diff(s, 2)
        changed = [(d.kind, d.text.strip()) for d in lines if d.kind in ("add", "remove")]
        assert changed[0][0] == "remove" and changed[0][1].startswith("mql_score = 35")
        assert changed[1][0] == "add" and changed[1][1].startswith("mql_score = 10")
        assert lines[0].kind == "hunk"
        first = rulesets.diff(s, 1)
        assert all(d.kind in ("add", "hunk") for d in first)
        with pytest.raises(rulesets.RuleSetError, match="no rules version 9"):
            rulesets.diff(s, 9)
        restored = rulesets.restore(s, 1, actor="user:1")
        assert (restored.version, restored.source) == (3, "v1 restored")
        assert rules.active(s).mql_score == 35


# --- the sales team ----------------------------------------------------------------


def test_sales_team_edits_and_absences_steer_routing(app):
    with uow(app) as s:
        anna = sales_team.add_person(
            s, email="anna@sales.example", name="Anna", language="de", actor="cli:test"
        )
        ben = sales_team.add_person(
            s, email="ben@sales.example", name="Ben", weight=2, actor="cli:test"
        )
        team = sales_teams.add_team(s, "dach", "round_robin", actor="cli:test")
        sales_teams.add_member(s, team.id, anna.id, actor="cli:test")
        sales_teams.add_member(s, team.id, ben.id, actor="cli:test")
        with pytest.raises(sales_team.Conflict):
            sales_team.add_person(s, email="ANNA@sales.example", name="Other", actor="cli:test")
        with pytest.raises(sales_team.Conflict):
            sales_teams.add_team(s, "dach", actor="cli:test")
        sales_team.update_person(s, ben.id, actor="cli:test", weekly_capacity=0)
        with pytest.raises(routing.SalesError, match="capacity"):
            sales_team.update_person(s, ben.id, actor="cli:test", weekly_capacity=-1)
        today = clock.now().date()
        absence = absences.add_absence(
            s, anna.id, today, today + dt.timedelta(days=2), actor="cli:test"
        )
        with pytest.raises(routing.SalesError, match="ends before"):
            absences.add_absence(s, anna.id, today, today - dt.timedelta(days=1), actor="cli:test")
        with pytest.raises(routing.SalesError, match="over already"):
            absences.add_absence(
                s,
                anna.id,
                today - dt.timedelta(days=5),
                today - dt.timedelta(days=4),
                actor="cli:test",
            )
        rows = {row.email: row for row in sales_team.roster(s)}
        assert rows["anna@sales.example"].absent_today
        assert not rows["ben@sales.example"].absent_today
        assert rows["anna@sales.example"].teams == ("dach",)
        # Anna is away and Ben is full: nobody in the team is available.
        assert routing.pick_from_team(s, team, set()) is None
        absences.delete_absence(s, absence.id, actor="cli:test")
        assert routing.pick_from_team(s, team, set()).id == anna.id
        future = absences.add_absence(
            s, anna.id, today + dt.timedelta(days=3), today + dt.timedelta(days=4), actor="cli:test"
        )
        assert routing.pick_from_team(s, team, set()).id == anna.id  # not away yet
        assert [a.id for a in absences.absences(s, person_id=anna.id)] == [future.id]
        sales_teams.remove_member(s, team.id, anna.id, actor="cli:test")
        assert [m.name for m in sales_teams.team_row(s, team.id).members] == ["Ben"]
        sales_teams.delete_team(s, team.id, actor="cli:test")
        assert sales_teams.team_rows(s) == []


def test_a_team_that_handed_off_leads_stays(app):
    lead_id = factories.lead(app)
    with uow(app) as s:
        team = sales_teams.add_team(s, "inbound", actor="cli:test")
        s.add(
            Handoff(
                id=uuid.uuid4(), lead_id=lead_id, team_id=team.id, routing_rule="x", status="queued"
            )
        )
        s.flush()
        with pytest.raises(sales_team.Conflict, match="handed off"):
            sales_teams.delete_team(s, team.id, actor="cli:test")


# --- the handoff board -------------------------------------------------------------


def _handoff(app, person_id, status, hours_ago):
    lead_id = factories.lead(app)
    with uow(app) as s:
        handoff = Handoff(
            id=uuid.uuid4(),
            lead_id=lead_id,
            person_id=person_id,
            routing_rule="board",
            status=status,
            offered_at=clock.now() - dt.timedelta(hours=hours_ago),
        )
        s.add(handoff)
        return handoff.id


def test_board_lists_open_handoffs_and_marks_the_overdue(app):
    anna = factories.salesperson(app, "anna@sales.example", "Anna")
    ben = factories.salesperson(app, "ben@sales.example", "Ben")
    late = _handoff(app, anna, "offered", 30)  # the example gives 24 hours
    fresh = _handoff(app, anna, "offered", 1)
    queued = _handoff(app, None, "queued", 2)
    bens = _handoff(app, ben, "offered", 25)
    _handoff(app, anna, "accepted", 40)  # decided: not on the board
    with uow(app) as s:
        everything = handoff_board.board(s)
        assert [r.id for r in everything.rows] == [late, bens, queued, fresh]
        assert (everything.open_count, everything.overdue_count) == (4, 2)
        assert [r.overdue for r in everything.rows] == [True, True, False, False]
        assert handoff_board.board(s, overdue_only=True).rows[-1].id == bens
        annas = handoff_board.board(s, person_id=anna)
        assert [r.id for r in annas.rows] == [late, fresh]
        first = handoff_board.board(s, limit=2)
        assert first.next_after is not None
        rest = handoff_board.board(s, limit=2, after=first.next_after)
        assert [r.id for r in first.rows + rest.rows] == [late, bens, queued, fresh]
        assert rest.next_after is None
        assert handoff_board.people_names(s, {anna, ben}) == {anna: "Anna", ben: "Ben"}


# --- the admin API -----------------------------------------------------------------


def _owner(app, role="owner"):
    client, user_id = factories.signed_in_client(app, role)
    headers = {"X-CSRFToken": factories.csrf_token(client, "/admin/account")}
    return client, headers, user_id


def test_api_rules_validate_dry_run_activate_versions(app):
    form_id = contact_form(app)
    lead_id = _graded_lead(app, form_id)
    client, headers, user_id = _owner(app, "marketing")
    bad = EXAMPLE.replace("points = 20\n", "points = -\n", 1)

    answer = client.post("/api/v1/scoring/rules/validate", json={"text": bad}, headers=headers)
    assert answer.status_code == 200
    assert answer.get_json()["valid"] is False and answer.get_json()["line"] == BAD_LINE
    ok = client.post("/api/v1/scoring/rules/validate", json={"text": EXAMPLE}, headers=headers)
    assert ok.get_json()["valid"] is True

    refused = client.post("/api/v1/scoring/rules/dry-run", json={"text": bad}, headers=headers)
    assert refused.status_code == 422
    assert refused.mimetype == "application/problem+json"
    assert refused.get_json()["errors"]["text"][0].startswith(f"line {BAD_LINE}: ")
    preview = client.post(
        "/api/v1/scoring/rules/dry-run", json={"text": EASY_MQL}, headers=headers
    ).get_json()
    assert preview["promotions"] == 1 and preview["complete"] is True

    refused = client.post("/api/v1/scoring/rules/activate", json={"text": bad}, headers=headers)
    assert refused.status_code == 422
    assert f"line {BAD_LINE}:" in refused.get_json()["errors"]["text"][0]
    created = client.post("/api/v1/scoring/rules/activate", json={"text": EXAMPLE}, headers=headers)
    assert created.status_code == 201 and created.get_json()["version"] == 1
    created = client.post(
        "/api/v1/scoring/rules/activate", json={"text": EASY_MQL}, headers=headers
    )
    assert created.get_json() | {"loaded_at": None} == {
        "version": 2,
        "source": "api",
        "sha256": created.get_json()["sha256"],
        "loaded_at": None,
        "active": True,
        "unrouted_rules": [],
    }
    assert _state(app, lead_id)[1] == Stage.MQL
    both = client.post(
        "/api/v1/scoring/rules/activate", json={"text": EXAMPLE, "version": 1}, headers=headers
    )
    assert both.status_code == 422
    missing = client.post("/api/v1/scoring/rules/activate", json={"version": 7}, headers=headers)
    assert missing.status_code == 404

    listed = client.get("/api/v1/scoring/rules/versions?limit=1").get_json()
    assert [v["version"] for v in listed] == [2]
    detail = client.get("/api/v1/scoring/rules/versions/2").get_json()
    assert detail["text"] == EASY_MQL
    added = [line["text"] for line in detail["diff"] if line["kind"] == "add"]
    assert [text.split("#")[0].strip() for text in added] == ["mql_score = 10"]
    assert client.get("/api/v1/scoring/rules/versions/99").status_code == 404
    assert client.get("/api/v1/scoring/rules/versions/99999999999").status_code == 404
    with uow(app) as s:
        actors = s.scalars(
            sa.select(AuditEntry.actor).where(AuditEntry.action == rulesets.ACTIVATED)
        ).all()
        assert actors == [f"user:{user_id}"] * 2


def test_api_sales_team_crud(app):
    client, headers, _user = _owner(app)
    made = client.post(
        "/api/v1/salespeople",
        json={
            "email": "anna@sales.example",
            "name": "Anna",
            "language": "de",
            "weekly_capacity": 5,
        },
        headers=headers,
    )
    assert made.status_code == 201, made.get_data(as_text=True)
    anna = made.get_json()
    assert (anna["name"], anna["weekly_capacity"], anna["active"]) == ("Anna", 5, True)
    again = client.post(
        "/api/v1/salespeople", json={"email": "anna@sales.example", "name": "A"}, headers=headers
    )
    assert again.status_code == 409 and again.mimetype == "application/problem+json"
    changed = client.patch(
        f"/api/v1/salespeople/{anna['id']}", json={"weight": 3}, headers=headers
    ).get_json()
    assert changed["weight"] == 3
    team = client.post("/api/v1/teams", json={"name": "dach"}, headers=headers).get_json()
    joined = client.post(
        f"/api/v1/teams/{team['id']}/members", json={"person_id": anna["id"]}, headers=headers
    ).get_json()
    assert joined["members"] == [{"id": anna["id"], "name": "Anna"}]
    assert (
        client.post(
            f"/api/v1/teams/{team['id']}/members", json={"person_id": 999}, headers=headers
        ).status_code
        == 404
    )
    strategy = client.patch(
        f"/api/v1/teams/{team['id']}", json={"strategy": "least_loaded"}, headers=headers
    )
    assert strategy.get_json()["strategy"] == "least_loaded"
    today = clock.now().date()
    absence = client.post(
        "/api/v1/absences",
        json={"person_id": anna["id"], "starts_on": str(today), "ends_on": str(today)},
        headers=headers,
    )
    assert absence.status_code == 201
    backwards = client.post(
        "/api/v1/absences",
        json={
            "person_id": anna["id"],
            "starts_on": str(today),
            "ends_on": str(today - dt.timedelta(days=1)),
        },
        headers=headers,
    )
    assert backwards.status_code == 422 and "ends_on" in backwards.get_json()["errors"]
    assert client.get(f"/api/v1/salespeople/{anna['id']}").get_json()["absent_today"] is True
    assert [a["id"] for a in client.get("/api/v1/absences").get_json()] == [
        absence.get_json()["id"]
    ]
    assert (
        client.delete(f"/api/v1/absences/{absence.get_json()['id']}", headers=headers).status_code
        == 204
    )
    assert (
        client.delete(
            f"/api/v1/teams/{team['id']}/members/{anna['id']}", headers=headers
        ).status_code
        == 204
    )
    assert client.delete(f"/api/v1/teams/{team['id']}", headers=headers).status_code == 204
    assert client.delete(f"/api/v1/salespeople/{anna['id']}", headers=headers).status_code == 204
    assert client.get("/api/v1/salespeople").get_json()[0]["active"] is False
    assert client.get("/api/v1/salespeople/4294967296").status_code == 404
    # Marketing edits rules, not the sales team.
    marketing, _m_headers, _ = _owner(app, "marketing")
    assert marketing.get("/api/v1/salespeople").status_code == 403


def test_api_handoffs_sales_see_their_own(app):
    anna = factories.salesperson(app, "anna@sales.example", "Anna")
    ben = factories.salesperson(app, "ben@sales.example", "Ben")
    mine = _handoff(app, anna, "offered", 30)
    _handoff(app, ben, "offered", 2)
    sales = factories.signed_in_client(app, "sales", salesperson_id=anna)[0]
    own = sales.get("/api/v1/handoffs").get_json()
    assert [row["id"] for row in own["items"]] == [str(mine)]
    assert (own["open_count"], own["overdue_count"]) == (1, 1)
    marketing, _headers, _ = _owner(app, "marketing")
    page = marketing.get("/api/v1/handoffs?limit=1").get_json()
    assert page["open_count"] == 2 and len(page["items"]) == 1
    following = marketing.get(f"/api/v1/handoffs?limit=1&cursor={page['next_cursor']}").get_json()
    assert following["next_cursor"] is None and len(following["items"]) == 1
    assert marketing.get("/api/v1/handoffs?cursor=nonsense").status_code == 422
    viewer, _headers, _ = _owner(app, "viewer")
    assert viewer.get("/api/v1/handoffs").status_code == 403


def test_cli_load_goes_through_the_service_and_dry_run_names_the_line(app, tmp_path):
    from click.testing import CliRunner

    from leadvault.cli import cli
    from tests.test_scoring import cli_env

    lead_id = _graded_lead(app, contact_form(app))
    runner = CliRunner()
    bad = tmp_path / "bad.toml"
    bad.write_text(EXAMPLE.replace("points = 20\n", "points = -\n", 1))
    refused = runner.invoke(cli, ["scoring", "dry-run", str(bad)], env=cli_env(app), obj=app)
    assert refused.exit_code == 1 and f"{bad}:{BAD_LINE}:" in refused.output
    good = tmp_path / "rules.toml"
    good.write_text(EASY_MQL)
    preview = runner.invoke(cli, ["scoring", "dry-run", str(good)], env=cli_env(app), obj=app)
    assert preview.exit_code == 0, preview.output
    assert "1 would become MQL" in preview.output
    assert _state(app, lead_id)[1] == Stage.NEW
    loaded = runner.invoke(cli, ["scoring", "load", str(good)], env=cli_env(app), obj=app)
    assert loaded.exit_code == 0, loaded.output
    assert _state(app, lead_id)[1] == Stage.MQL  # activation re-grades
    with uow(app) as s:
        entry = s.scalars(
            sa.select(AuditEntry).where(AuditEntry.action == rulesets.ACTIVATED)
        ).one()
        assert entry.actor.startswith("cli:")
