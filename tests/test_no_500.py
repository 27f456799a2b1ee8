"""No input makes any route answer 500 or show a traceback."""

from __future__ import annotations

import itertools

import pytest

from tests.conftest import make_form

JUNK_SEGMENTS = ["x", "%FF%FE", "a" * 300, "eyJsIjoiMDAifQ.AAAA.BBBB", "..%2F..%2Fetc"]
BODIES = [
    {"json": {"email": "x@example.org", "consent": ["newsletter"], "render_token": "t"}},
    {"json": [1, 2, 3]},
    {"json": {"purpose": {"$ne": 1}, "events": "nope", "token": 5}},
    {"data": b'{"email": "\xff"}', "content_type": "application/json"},
    {
        "data": b"email=%FF&purpose=newsletter&List-Unsubscribe=One-Click",
        "content_type": "application/x-www-form-urlencoded",
    },
    {"data": "plain", "content_type": "text/plain"},
]


def _urls(app, form_id: str) -> list[tuple[str, str]]:
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.endswith(".static"):
            continue
        names = sorted(rule.arguments)
        choices = [
            [form_id, *JUNK_SEGMENTS[:2]] if name == "form_id" else JUNK_SEGMENTS for name in names
        ]
        for combo in itertools.islice(itertools.product(*choices), 6):
            path = rule.rule
            for name, value in zip(names, combo, strict=True):
                path = path.replace(f"<{name}>", value).replace(f"<path:{name}>", value)
            for method in [*sorted((rule.methods or set()) - {"OPTIONS"}), "OPTIONS"]:
                found.append((method, path))
    return found


@pytest.mark.parametrize("kind", ["browser", "foreign-json", "api-token"])
def test_every_route_answers_without_500(app, client, kind):
    from leadvault import api
    from leadvault.app import runtime
    from leadvault.db import unit_of_work

    form_id = make_form(app)
    headers = {
        "browser": {},
        "foreign-json": {"Accept": "application/json", "Origin": "https://evil.example"},
        "api-token": {"Accept": "application/json"},
    }[kind]
    if kind == "api-token":
        with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
            secret = api.create_token(s, "fuzz", ["consent:read", "events:write"])
        headers["Authorization"] = f"Bearer {secret}"
    failures = []
    requests = 0
    for method, path in _urls(app, form_id):
        bodies = BODIES if method in {"POST", "PUT", "PATCH"} else [{}]
        for body in bodies:
            response = client.open(path, method=method, headers=headers, **body)
            requests += 1
            text = response.get_data(as_text=True)
            if response.status_code >= 500 or "Traceback" in text:
                failures.append(f"{method} {path[:60]} {sorted(body)} -> {response.status_code}")
    assert requests > 200  # every route, several junk parameters and bodies
    assert not failures, failures[:20]


def test_an_id_no_row_can_have_is_not_found_for_every_method(app):
    """A route's <int:…> beyond a row id overflowed SQLite's driver (a 500); it is a
    404 at routing, for every method the path has (the API's DELETE included)."""
    from tests import factories

    client, _ = factories.signed_in_client(app, "owner")
    for too_big in (2**31, 2**63, 10**30):
        for path in (
            f"/console/webhooks/{too_big}",
            f"/console/sales/people/{too_big}",
            f"/console/scoring/versions/{too_big}",
        ):
            assert client.get(path).status_code == 404, path
        deleted = client.delete(f"/api/v1/salespeople/{too_big}")
        assert deleted.status_code == 404
        assert deleted.mimetype == "application/problem+json"
    # The largest id a row can have still reaches the view (which finds no row).
    assert client.get(f"/console/webhooks/{2**31 - 1}").status_code == 404


def test_a_last_day_of_the_calendar_filters_without_an_upper_bound(app):
    """``until=9999-12-31`` (the last day a date can have) overflowed when the filter
    turned it into the next midnight (a 500); every day is on or before it, so it filters
    nothing out, on the lead list, the export page and the privacy page's trail."""
    from tests import factories

    factories.lead(app, profile={"first_name": "Ada"})
    client, _ = factories.signed_in_client(app, "owner")
    for path in ("/console/leads", "/console/exports", "/console/privacy"):
        last = client.get(f"{path}?until=9999-12-31")
        assert last.status_code == 200, path
        unfiltered = client.get(path).get_data(as_text=True)
        assert last.get_data(as_text=True).count("<tr") == unfiltered.count("<tr"), path
    assert client.get("/console/leads?until=9999-12-31").get_data(as_text=True).count("<tr") > 1


def test_digits_that_python_cannot_read_as_a_number_are_refused_not_a_500(app):
    """str.isdigit() holds for superscripts ("²") that int() cannot read: the console's
    numeric query and form values checked with it answered 500. Each is now a 4xx or,
    where the value is only a choice, read as no choice."""
    from tests import factories

    client, _ = factories.signed_in_client(app, "owner")
    for path in (
        "/console/privacy?before=²",
        "/console/scoring/versions?before=²",
        "/console/consent?published=²",
    ):
        assert client.get(path).status_code < 500, path
    csrf = factories.csrf_token(client, "/console/settings/tokens")
    posts = {
        "/console/settings/tokens": {"name": "ci", "scopes": "consent:read", "days": "²"},
        "/console/settings/users": {
            "email": "sam@example.org",
            "role": "sales",
            "salesperson": "²",
        },
        "/console/sales/teams": {"name": "dach"},
    }
    for path, data in posts.items():
        answer = client.post(path, data={**data, "csrf_token": csrf})
        assert answer.status_code < 500, path
    with factories.uow(app) as s:
        from scoring import sales_teams

        team = sales_teams.team_rows(s)[0]
    removed = client.post(
        f"/console/sales/teams/{team.id}", data={"action": "remove:²", "csrf_token": csrf}
    )
    assert removed.status_code == 400
    form = client.post(
        "/console/forms/new",
        data={
            "csrf_token": csrf,
            "name": "Spring",
            "kind": "newsletter",
            "title_en": "Spring",
            "purpose_newsletter": "required",
            "version_newsletter_en": "²",
            "version_newsletter_de": "1",
            "after": "thanks",
        },
    )
    assert form.status_code == 422


def test_a_failed_flush_in_the_console_answers_with_the_apps_page(app, monkeypatch):
    """A flush that failed left the request's session unusable; the console's error page
    (which looks up the signed-in account) raised again, so the visitor got Werkzeug's
    bare 500 instead of the 409 page. The handler drops the session first."""
    from scoring import sales_teams
    from scoring.models import SalesTeam
    from tests import factories

    def clashing_add_team(session, name, strategy="round_robin", **_who):
        session.add_all([SalesTeam(name=name), SalesTeam(name=name)])
        session.flush()

    monkeypatch.setattr(sales_teams, "add_team", clashing_add_team)
    client, _ = factories.signed_in_client(app, "owner")
    csrf = factories.csrf_token(client, "/console/settings/tokens")
    answer = client.post("/console/sales/teams", data={"name": "dach", "csrf_token": csrf})
    assert answer.status_code == 409
    text = answer.get_data(as_text=True)
    assert "changed by another request" in text
    assert 'class="lv-page"' in text or "<main" in text
    with factories.uow(app) as s:
        assert not sales_teams.team_rows(s)


def test_an_unknown_salesperson_for_an_account_is_refused_not_a_500(app):
    """A sales account for a salesperson id no row has failed the foreign key at the
    flush: a 500 in the console (and a traceback on the command line). It is refused."""
    from click.testing import CliRunner

    from leadvault.cli import cli
    from tests import factories

    client, _ = factories.signed_in_client(app, "owner")
    csrf = factories.csrf_token(client, "/console/settings/users")
    made = client.post(
        "/console/settings/users",
        data={
            "email": "sam@example.org",
            "role": "sales",
            "salesperson": "999",
            "csrf_token": csrf,
        },
    )
    assert made.status_code == 422
    assert "There is no such salesperson." in made.get_data(as_text=True)
    viewer_id, _ = factories.staff_user(app, "viewer")
    changed = client.post(
        f"/console/settings/users/{viewer_id}/role",
        data={"role": "sales", "salesperson": "999", "csrf_token": csrf},
    )
    assert changed.status_code == 422
    assert "There is no such salesperson." in changed.get_data(as_text=True)
    added = CliRunner().invoke(
        cli, ["users", "add", "sam@example.org", "--role", "sales", "--salesperson", "999"], obj=app
    )
    assert added.exit_code == 1, added.output
    assert "there is no salesperson with this id" in added.output
    assert not isinstance(added.exception, Exception) or isinstance(added.exception, SystemExit)


def test_an_id_no_row_can_have_is_a_usage_error_on_the_command_line(app):
    """An id argument beyond 64 bits overflowed SQLite's driver with a traceback (exit 1);
    ids are bounded like the URLs' <int:…> (32-bit on PostgreSQL): a usage error, exit 2."""
    from click.testing import CliRunner

    from leadvault import commands, web
    from leadvault.cli import cli

    assert commands.ROW_ID.max == web.ROW_ID_MAX
    too_big = str(2**70)
    for args in (
        ["keys", "retire", too_big],
        ["webhooks", "test", too_big],
        ["webhooks", "enable", too_big],
        ["webhooks", "log", too_big],
        ["nurture", "show", "welcome", "--version", too_big],
        ["users", "add", "sam@example.org", "--role", "sales", "--salesperson", too_big],
    ):
        result = CliRunner().invoke(cli, args, obj=app)
        assert result.exit_code == 2, (args, result.output)
        assert "is not in the range 1<=x<=2147483647" in result.output, args
        assert "Traceback" not in result.output


def test_a_token_name_is_one_line_of_1_to_80_characters_everywhere(app):
    """A NUL in a personal token's name failed PostgreSQL's insert (a 500 in the console);
    ``api-tokens create`` took an empty name (which cannot be revoked by name), and one
    beyond the column a traceback on PostgreSQL. Both services refuse the same names."""
    from click.testing import CliRunner

    from leadvault.cli import cli
    from tests import factories

    client, _ = factories.signed_in_client(app, "owner")
    csrf = factories.csrf_token(client, "/console/settings/tokens")
    for name in ("ci\x00", "two\nlines", "\u202eevil", "x" * 81, "   "):
        answer = client.post(
            "/console/settings/tokens",
            data={"name": name, "scope": "leads:read", "days": "7", "csrf_token": csrf},
        )
        assert answer.status_code == 422, repr(name)
        made = CliRunner().invoke(
            cli, ["api-tokens", "create", name, "--scope", "consent:read"], obj=app
        )
        assert made.exit_code == 1, (repr(name), made.output)
        assert "a token name has 1 to 80 characters on one line" in made.output
    fine = CliRunner().invoke(
        cli, ["api-tokens", "create", " ci ", "--scope", "consent:read"], obj=app
    )
    assert fine.exit_code == 0, fine.output
    assert CliRunner().invoke(cli, ["api-tokens", "revoke", "ci"], obj=app).exit_code == 0


def test_sales_team_add_refuses_a_name_the_console_refuses(app):
    """``sales team add ''`` (or "DACH Team") made a team the console and the API refuse
    and no rules file can name; the command uses their schema: a usage error, exit 2."""
    from click.testing import CliRunner

    from leadvault.cli import cli

    for name in ("", "DACH Team", "dach\x00"):
        made = CliRunner().invoke(cli, ["sales", "team", "add", name], obj=app)
        assert made.exit_code == 2, (repr(name), made.output)
        assert "Invalid value for NAME: lower-case letters, digits, _ or -" in made.output
    fine = CliRunner().invoke(cli, ["sales", "team", "add", "dach"], obj=app)
    assert fine.exit_code == 0, fine.output
