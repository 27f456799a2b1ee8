"""The console's scoring, sales team and handoff pages through the Flask client (issue 12
§6): the rules editor with line-precise errors, the dry run, activation with a confirm
step, versions with diffs, the sales team forms and the handoff board; both databases."""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa

from leadvault import clock
from leadvault.models import AuditEntry
from scoring import absences, rules, rulesets, sales_team, sales_teams
from scoring.models import Handoff, Stage
from tests import factories
from tests.test_scoring import contact_form
from tests.test_scoring_admin import (
    BAD_LINE,
    EASY_MQL,
    EXAMPLE,
    _graded_lead,
    _handoff,
    _state,
)

uow = factories.uow


def _console(app, role="owner", **kwargs):
    client, user_id = factories.signed_in_client(app, role, **kwargs)
    return (
        client,
        factories.csrf_token(
            client, "/console/scoring" if role != "sales" else "/console/handoffs"
        ),
        user_id,
    )


def _h1s(html: str) -> int:
    return len(re.findall(r"<h1[ >]", html))


def test_editor_shows_the_refused_line_then_previews_and_activates(app):
    form_id = contact_form(app)
    lead_id = _graded_lead(app, form_id)
    client, csrf, user_id = _console(app, "marketing")

    editor = client.get("/console/scoring")
    html = editor.get_data(as_text=True)
    assert editor.status_code == 200 and _h1s(html) == 1
    assert "mql_score = 35" in html and 'id="rules-text"' in html

    bad = EXAMPLE.replace("points = 20\n", "points = -\n", 1)
    refused = client.post("/console/scoring", data={"text": bad, "csrf_token": csrf})
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert f"Line {BAD_LINE}:" in html
    marked = re.search(rf'<li id="line-{BAD_LINE}" class="bad">(.*?)</li>', html, re.S)
    assert marked and "points = -" in marked.group(1) and "line-problem" in marked.group(1)
    assert 'aria-invalid="true"' in html and "points = -" in html  # the edit is kept

    preview = client.post(
        "/console/scoring", data={"text": EASY_MQL, "action": "dry_run", "csrf_token": csrf}
    )
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200
    assert re.search(r'id="dry-promotions">1<', html)
    assert _state(app, lead_id)[1] == Stage.NEW  # a preview writes nothing

    confirm = client.post("/console/scoring/confirm", data={"text": EASY_MQL, "csrf_token": csrf})
    html = confirm.get_data(as_text=True)
    assert confirm.status_code == 200 and _h1s(html) == 1
    assert 'class="d-add"' in html and "mql_score = 10" in html
    assert re.search(r'id="confirm-promotions">1<', html)
    with uow(app) as s:
        assert rulesets.history(s) == []  # the confirm step stores nothing either

    done = client.post("/console/scoring/activate", data={"text": EASY_MQL, "csrf_token": csrf})
    assert done.status_code == 302 and done.location.endswith(
        "/console/scoring/versions/1?activated=1"
    )
    page = client.get(done.location).get_data(as_text=True)
    assert 'id="activated"' in page
    assert _state(app, lead_id)[1] == Stage.MQL
    with uow(app) as s:
        assert rules.active(s).mql_score == 10
        actor = s.scalar(sa.select(AuditEntry.actor).where(AuditEntry.action == rulesets.ACTIVATED))
        assert actor == f"user:{user_id}"


def test_activation_needs_the_csrf_token_and_a_valid_file(app):
    client, csrf, _ = _console(app)
    assert client.post("/console/scoring/activate", data={"text": EXAMPLE}).status_code == 400
    refused = client.post("/console/scoring/activate", data={"text": "[oops", "csrf_token": csrf})
    assert refused.status_code == 422 and "Line 1:" in refused.get_data(as_text=True)
    assert (
        client.post("/console/scoring", data={"text": " ", "csrf_token": csrf}).status_code == 400
    )
    with uow(app) as s:
        assert rulesets.history(s) == []


def test_versions_diff_and_restore_with_a_confirm_step(app):
    with uow(app) as s:
        rulesets.activate(s, EXAMPLE, actor="user:1")
        rulesets.activate(s, EASY_MQL, actor="user:1")
    client, csrf, _ = _console(app)
    listed = client.get("/console/scoring/versions").get_data(as_text=True)
    assert "v2" in listed and "v1" in listed and _h1s(listed) == 1
    two = client.get("/console/scoring/versions/2").get_data(as_text=True)
    assert 'class="d-remove"' in two and "mql_score = 35" in two
    assert client.get("/console/scoring/versions/9").status_code == 404
    assert client.get("/console/scoring/versions/99999999999").status_code == 404
    confirm = client.get("/console/scoring/versions/1/restore")
    assert confirm.status_code == 200 and 'id="confirm-activate"' in confirm.get_data(as_text=True)
    with uow(app) as s:
        assert len(rulesets.history(s)) == 2  # a GET changes nothing
    done = client.post("/console/scoring/versions/1/restore", data={"csrf_token": csrf})
    assert done.status_code == 302 and "/versions/3" in done.location
    with uow(app) as s:
        assert rules.active(s).mql_score == 35


def test_roles_see_the_pages_their_permissions_open(app):
    marketing, _csrf, _ = _console(app, "marketing")
    assert marketing.get("/console/scoring").status_code == 200
    assert marketing.get("/console/sales").status_code == 403
    nav = marketing.get("/console/scoring").get_data(as_text=True)
    assert 'href="/console/handoffs"' in nav and 'href="/console/sales"' not in nav
    viewer = factories.signed_in_client(app, "viewer")[0]
    assert viewer.get("/console/scoring").status_code == 403
    assert viewer.get("/console/handoffs").status_code == 403


def test_sales_team_forms(app):
    client, csrf, _ = _console(app)
    bad = client.post(
        "/console/sales/people",
        data={"name": "Anna", "email": "not-an-address", "csrf_token": csrf},
    )
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422 and 'id="email-error"' in html
    made = client.post(
        "/console/sales/people",
        data={
            "name": "Anna",
            "email": "anna@sales.example",
            "language": "de",
            "weight": "2",
            "weekly_capacity": "5",
            "csrf_token": csrf,
        },
    )
    assert made.status_code == 302
    twice = client.post(
        "/console/sales/people",
        data={"name": "A", "email": "anna@sales.example", "csrf_token": csrf},
    )
    assert twice.status_code == 422 and "exists already" in twice.get_data(as_text=True)
    with uow(app) as s:
        anna = sales_team.roster(s)[0]
    assert (anna.name, anna.weight, anna.weekly_capacity) == ("Anna", 2, 5)

    assert (
        client.post("/console/sales/teams", data={"name": "dach", "csrf_token": csrf}).status_code
        == 302
    )
    with uow(app) as s:
        team = sales_teams.team_rows(s)[0]
    joined = client.post(
        f"/console/sales/teams/{team.id}",
        data={"action": "add_member", "person_id": str(anna.id), "csrf_token": csrf},
    )
    assert joined.status_code == 302
    page = client.get("/console/sales").get_data(as_text=True)
    assert "anna@sales.example" in page and _h1s(page) == 1
    assert f'value="remove:{anna.id}"' in page

    today = clock.now().date()
    backwards = client.post(
        "/console/sales/absences",
        data={
            "person_id": str(anna.id),
            "starts_on": str(today),
            "ends_on": str(today - dt.timedelta(days=1)),
            "csrf_token": csrf,
        },
    )
    assert backwards.status_code == 422 and 'id="ends_on-error"' in backwards.get_data(as_text=True)
    added = client.post(
        "/console/sales/absences",
        data={
            "person_id": str(anna.id),
            "starts_on": str(today),
            "ends_on": str(today + dt.timedelta(days=1)),
            "csrf_token": csrf,
        },
    )
    assert added.status_code == 302
    person = client.get(f"/console/sales/people/{anna.id}").get_data(as_text=True)
    assert "absent" in person and _h1s(person) == 1
    saved = client.post(
        f"/console/sales/people/{anna.id}",
        data={"language": "en", "weight": "3", "weekly_capacity": "7", "csrf_token": csrf},
    )
    assert saved.status_code == 302
    with uow(app) as s:
        row = sales_team.row_of(s, anna.id)
        absence = absences.absences(s)[0]
    assert (row.weight, row.weekly_capacity, row.active) == (3, 7, False)  # box unticked
    assert (
        client.post(
            f"/console/sales/absences/{absence.id}/delete", data={"csrf_token": csrf}
        ).status_code
        == 302
    )
    assert (
        client.post(
            f"/console/sales/teams/{team.id}", data={"action": "delete", "csrf_token": csrf}
        ).status_code
        == 302
    )
    assert client.get("/console/sales/people/77777").status_code == 404
    with uow(app) as s:
        assert absences.absences(s) == [] and sales_teams.team_rows(s) == []


def test_handoff_board_for_marketing_and_for_sales(app):
    anna = factories.salesperson(app, "anna@sales.example", "Anna")
    ben = factories.salesperson(app, "ben@sales.example", "Ben")
    mine = _handoff(app, anna, "offered", 30)
    theirs = _handoff(app, ben, "offered", 1)
    marketing, _csrf, _ = _console(app, "marketing")
    html = marketing.get("/console/handoffs").get_data(as_text=True)
    assert re.search(r'id="open-count">2<', html) and re.search(r'id="overdue-count">1<', html)
    assert "Anna" in html and "Ben" in html
    overdue = marketing.get("/console/handoffs?overdue=1").get_data(as_text=True)
    assert "Anna" in overdue and "Ben" not in overdue
    assert marketing.get("/console/handoffs?after=zzz").status_code == 400
    sales, _csrf, _ = _console(app, "sales", salesperson_id=anna)
    own = sales.get("/console/handoffs").get_data(as_text=True)
    with uow(app) as s:
        lead_of = {h: s.get(Handoff, h).lead_id for h in (mine, theirs)}
    assert re.search(r'id="open-count">1<', own)
    assert str(lead_of[mine]) in own and str(lead_of[theirs]) not in own
