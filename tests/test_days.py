"""One way to read a day (leadvault.days) everywhere: the same table of typed days gets
the same verdict, with the same words for each of the three problems, from the core,
the console (lead list, privacy page), the API (lead list, audit trail, exports,
absences) and the command line (leads list, export, audit list, webhooks redeliver,
the reports).
A from/to pair that holds nothing is refused naming both fields, by each of them; an
equal pair is refused only where "to" is exclusive. The audit trail's day filters
(API and CLI) cut where the console's privacy page cuts, and the dashboard names a
period it does not offer."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from click.testing import CliRunner

from leadvault import audit, clock, days
from leadvault.cli import cli
from tests import factories
from tests.test_date_filters import _marked
from tests.test_scoring import cli_env

P = days.Problem
# Typed day -> the problem (None: taken). date.fromisoformat took the second block.
TABLE: dict[str, days.Problem | None] = {
    "2026-03-31": None,
    "0001-01-01": None,
    "9999-12-31": None,
    "20260331": P.FORM,
    "2026-W14-2": P.FORM,
    "2026-090": P.FORM,
    "2026-1-1": P.FORM,
    "\uff12\uff10\uff12\uff16-01-01": P.FORM,  # full-width digits
    "31.12.2025": P.FORM,
    "2026-03-31x": P.FORM,
    "2026-02-30": P.CALENDAR,
    "2026-13-01": P.CALENDAR,
    "2026-00-10": P.CALENDAR,
    "10000-01-01": P.RANGE,
    "0000-12-31": P.RANGE,
}
# What each refusal says, in the console's, the API's and the command line's words alike.
WORDS = {
    P.FORM: "2025-03-31",
    P.CALENDAR: "no such day in the calendar",
    P.RANGE: "between the years 1 and 9999",
}


def test_the_core_reads_only_yyyy_mm_dd():
    for text, problem in TABLE.items():
        if problem is None:
            assert days.read(text) == dt.date.fromisoformat(text)
            continue
        with pytest.raises(days.BadDay) as caught:
            days.read(text)
        assert caught.value.problem is problem, text
        assert WORDS[problem] in str(caught.value)


def test_console_gives_each_day_the_cores_verdict(app):
    client, _ = factories.signed_in_client(app, "owner")
    places = (
        ("/console/leads", "since", "f-since", "Created from"),
        ("/console/leads", "until", "f-until", "Created to"),
        ("/console/privacy", "since", "a-since", "From"),
        ("/console/privacy", "until", "a-until", "To"),
    )
    for text, problem in TABLE.items():
        for path, name, element, label in places:
            page = client.get(path, query_string={name: text})
            if problem is None:
                assert page.status_code == 200, (path, name, text)
                continue
            assert page.status_code == 400, (path, name, text)
            message = _marked(page.get_data(as_text=True), element)
            assert message.startswith(label) and WORDS[problem] in message, (text, message)


def test_api_gives_each_day_the_cores_verdict(app):
    client, _ = factories.signed_in_client(app, "owner")
    csrf = factories.csrf_token(client, "/console/exports")
    for text, problem in TABLE.items():
        answers = {
            "created_from": client.get("/api/v1/leads", query_string={"created_from": text}),
            "since": client.get("/api/v1/audit", query_string={"since": text}),
            "until": client.get("/api/v1/audit", query_string={"until": text}),
            "created_to": client.post(
                "/api/v1/exports", json={"created_to": text}, headers={"X-CSRFToken": csrf}
            ),
        }
        absence = client.post(
            "/api/v1/absences",
            json={"person_id": 1, "starts_on": text, "ends_on": "9999-12-31"},
            headers={"X-CSRFToken": csrf},
        )
        for name, answer in answers.items():
            if problem is None:
                assert answer.status_code == 200, (name, text, answer.get_data(as_text=True))
                answer.get_data()  # an export's stream read to its end
                continue
            assert answer.status_code == 422, (name, text)
            assert answer.mimetype == "application/problem+json"
            assert WORDS[problem] in answer.get_json()["errors"][name][0], (name, text)
        errors = absence.get_json().get("errors") or {}
        if problem is None:
            assert "starts_on" not in errors, (text, errors)
        else:
            assert absence.status_code == 422 and WORDS[problem] in errors["starts_on"][0]


def test_api_moments_read_their_day_as_a_day_is_read(app):
    client, _ = factories.signed_in_client(app, "owner")
    for text, problem in TABLE.items():
        for moment in (f"{text}T08:00:00+00:00", f"{text}T08:00Z"):
            answer = client.get("/api/v1/leads", query_string={"created_to": moment})
            if problem is None:
                assert answer.status_code == 200, (moment, answer.get_data(as_text=True))
            else:
                assert answer.status_code == 422, moment
                assert WORDS[problem] in answer.get_json()["errors"]["created_to"][0], moment


def test_command_line_gives_each_day_the_cores_verdict(app, tmp_path):
    runner = CliRunner()
    env = cli_env(app)
    out = str(tmp_path / "leads.csv")
    commands = (
        (["leads", "list"], "--created-from"),
        (["export", "-o", out], "--created-to"),
        (["audit", "list"], "--since"),
        (["audit", "list"], "--until"),
        (["webhooks", "redeliver", "1"], "--since"),
        (["report", "bots"], "--since"),
        (["report", "bots", "--since", "0001-01-01"], "--until"),
        (["report", "funnel"], "--since"),
        (["report", "nurture"], "--since"),
    )
    for text, problem in TABLE.items():
        for command, option in commands:
            result = runner.invoke(cli, [*command, option, text], env=env, obj=app)
            if problem is None:
                # redeliver then refuses the missing endpoint (exit 1), never the day
                assert result.exit_code in {0, 1}, (command, text, result.output)
                assert "Invalid value" not in result.output
                continue
            assert result.exit_code == 2, (command, option, text, result.output)
            assert f"'{option}'" in result.output and WORDS[problem] in result.output
            assert "Traceback" not in result.output


# --- from after to -------------------------------------------------------------------


def test_console_refuses_a_to_day_before_the_from_day_naming_both(app):
    client, _ = factories.signed_in_client(app, "owner")
    later, earlier = "2026-03-02", "2026-03-01"
    for path, element, names in (
        ("/console/leads", "f-until", ("Created to", "Created from")),
        ("/console/privacy", "a-until", ("To", "“From”")),
    ):
        page = client.get(path, query_string={"since": later, "until": earlier, "actor": "x"})
        html = page.get_data(as_text=True)
        assert page.status_code == 400, path
        message = _marked(html, element)
        assert message.startswith(names[0]) and names[1] in message, message
        assert "nothing can match" in message
        assert not re.search(r'id="(?:f|a)-since"[^>]*aria-invalid', html)  # "since" is fine
        assert f'value="{later}"' in html and f'value="{earlier}"' in html  # kept as typed
        # The "to" day is included: one day from and to is one whole day, not nothing.
        assert client.get(path, query_string={"since": later, "until": later}).status_code == 200
    shown = client.get("/console/exports", query_string={"since": later, "until": earlier})
    assert shown.status_code == 400 and "nothing can match" in shown.get_data(as_text=True)


def test_console_names_both_fields_in_german(app):
    client, _ = factories.signed_in_client(app, "owner")
    csrf = factories.csrf_token(client, "/console/leads")
    client.post("/console/language", data={"csrf_token": csrf, "lang": "de"})
    html = client.get("/console/leads?since=2026-03-02&until=2026-03-01").get_data(as_text=True)
    message = _marked(html, "f-until")
    assert message.startswith("Erstellt bis") and "Erstellt ab" in message, message


def test_api_refuses_an_empty_range_with_a_422_naming_both(app):
    client, _ = factories.signed_in_client(app, "owner")
    csrf = factories.csrf_token(client, "/console/exports")

    def leads(first: str, last: str):
        return client.get("/api/v1/leads", query_string={"created_from": first, "created_to": last})

    def exports(first: str, last: str):
        body = {"created_from": first, "created_to": last}
        return client.post("/api/v1/exports", json=body, headers={"X-CSRFToken": csrf})

    def trail(first: str, last: str):
        return client.get("/api/v1/audit", query_string={"since": first, "until": last})

    # created_to is exclusive (a moment or a day left out): equal is empty too.
    for call in (leads, exports):
        for first, last in (("2026-03-02", "2026-03-01"), ("2026-03-02", "2026-03-02")):
            answer = call(first, last)
            assert answer.status_code == 422, (call.__name__, first, last)
            message = answer.get_json()["errors"]["created_to"][0]
            assert "created_from" in message and "created_to" in message, message
        answer = call("2026-03-01", "2026-03-02")
        assert answer.status_code == 200
        answer.get_data()
    assert leads("2026-03-02T08:00:00Z", "2026-03-02T08:00:01Z").status_code == 200
    # The audit trail's until is inclusive, as the console's "To": only before is empty.
    answer = trail("2026-03-02", "2026-03-01")
    assert answer.status_code == 422
    message = answer.get_json()["errors"]["until"][0]
    assert "since" in message and "until" in message, message
    assert trail("2026-03-02", "2026-03-02").status_code == 200


def test_command_line_refuses_an_empty_range_naming_both_options(app, tmp_path):
    runner = CliRunner()
    env = cli_env(app)
    out = str(tmp_path / "leads.csv")
    for command in (["leads", "list"], ["export", "-o", out]):
        for first, last in (("2026-03-02", "2026-03-01"), ("2026-03-02", "2026-03-02")):
            args = [*command, "--created-from", first, "--created-to", last]
            result = runner.invoke(cli, args, env=env, obj=app)
            assert result.exit_code == 2, (command, result.output)
            assert "--created-from" in result.output and "--created-to" in result.output
            assert "exclusive" in result.output
        args = [*command, "--created-from", "2026-03-01", "--created-to", "2026-03-02"]
        assert runner.invoke(cli, args, env=env, obj=app).exit_code == 0
    for command in (["audit", "list"], ["report", "bots"]):  # --until is inclusive
        args = [*command, "--since", "2026-03-02", "--until", "2026-03-01"]
        result = runner.invoke(cli, args, env=env, obj=app)
        assert result.exit_code == 2, result.output
        assert "--since" in result.output and "--until" in result.output
        args = [*command, "--since", "2026-03-02", "--until", "2026-03-02"]
        assert runner.invoke(cli, args, env=env, obj=app).exit_code == 0


# --- the audit trail's day filters ---------------------------------------------------


def _probe_entries(app) -> dict[str, dt.datetime]:
    """Entries by actor cli:probe at moments around the day 2026-03-02 (UTC)."""
    moments = {
        "before": dt.datetime(2026, 3, 1, 23, 59, 59, tzinfo=dt.UTC),
        "first": dt.datetime(2026, 3, 2, 0, 0, tzinfo=dt.UTC),
        "last": dt.datetime(2026, 3, 2, 23, 59, 59, tzinfo=dt.UTC),
        "after": dt.datetime(2026, 3, 3, 0, 0, tzinfo=dt.UTC),
    }
    for name, moment in moments.items():
        clock.freeze(moment)
        with factories.uow(app) as s:
            audit.record(
                s,
                actor="cli:probe",
                action="lead.revealed",
                object_type="lead",
                detail={"probe": name},
            )
    clock.freeze(None)
    return moments


CUTS = {
    ("2026-03-02", "2026-03-02"): {"first", "last"},
    ("2026-03-02", None): {"first", "last", "after"},
    (None, "2026-03-01"): {"before"},
    ("0001-01-01", "9999-12-31"): {"before", "first", "last", "after"},
}


def test_audit_day_filters_cut_alike_in_console_api_and_command_line(app):
    _probe_entries(app)
    client, _ = factories.signed_in_client(app, "owner")
    runner = CliRunner()
    env = cli_env(app)
    for (since, until), expected in CUTS.items():
        query = {"actor": "cli:probe", "since": since, "until": until}
        query = {k: v for k, v in query.items() if v is not None}
        listed = client.get("/api/v1/audit", query_string=query)
        assert listed.status_code == 200
        assert {row["detail"]["probe"] for row in listed.get_json()} == expected, query
        args = ["audit", "list", "--actor", "cli:probe"]
        args += [f"--{k}={v}" for k, v in query.items() if k != "actor"]
        result = runner.invoke(cli, args, env=env, obj=app)
        assert result.exit_code == 0, result.output
        found = set(re.findall(r'"probe": ?"(\w+)"', result.output))
        assert found == expected, (args, result.output)
        page = client.get("/console/privacy", query_string=query)
        shown = set(re.findall(r"probe: (\w+)", page.get_data(as_text=True)))
        assert page.status_code == 200 and shown == expected, (query, shown)


def test_the_api_document_describes_the_audit_day_filters(app):
    client, _ = factories.signed_in_client(app, "owner")
    spec = client.get("/api/v1/openapi.json").get_json()
    parameters = {p["name"]: p for p in spec["paths"]["/audit"]["get"]["parameters"]}
    for name in ("since", "until"):
        assert parameters[name]["schema"]["format"] == "date", parameters[name]
        assert "inclusive" in parameters[name]["description"]


# --- the dashboard's period ----------------------------------------------------------


def test_dashboard_shows_the_default_period_naming_a_period_it_does_not_offer(app):
    client, _ = factories.signed_in_client(app, "marketing")
    for value in ("7", "abc", "30x", "", "\uff19\uff10"):
        page = client.get("/console/dashboard", query_string={"days": value})
        html = page.get_data(as_text=True)
        assert page.status_code == 400, value
        message = re.search(r'<p class="error" role="alert" id="period-error">([^<]*)</p>', html)
        assert message and "30 or 90 days" in message.group(1) and "last 30" in message.group(1)
        assert 'aria-describedby="period-error"' in html
        assert 'id="h-funnel"' in html  # the board itself, for the default period
        assert re.search(r'days=30"[^>]*aria-current="page"', html)
    for value in ("30", "90"):
        page = client.get("/console/dashboard", query_string={"days": value})
        assert page.status_code == 200 and "period-error" not in page.get_data(as_text=True)
    csrf = factories.csrf_token(client, "/console/dashboard")
    client.post("/console/language", data={"csrf_token": csrf, "lang": "de"})
    html = client.get("/console/dashboard?days=7").get_data(as_text=True)
    assert "Gezeigt werden die letzten 30" in html


def test_api_says_it_in_the_requests_language(app):
    client, _ = factories.signed_in_client(app, "owner")
    german = {"Accept-Language": "de"}
    answer = client.get("/api/v1/audit?since=2026-02-30", headers=german)
    assert "Diesen Tag gibt es im Kalender nicht" in answer.get_json()["errors"]["since"][0]
    answer = client.get("/api/v1/audit?since=2026-03-02&until=2026-03-01", headers=german)
    assert "until liegt vor since" in answer.get_json()["errors"]["until"][0]
    answer = client.post(
        "/api/v1/exports",
        json={"created_to": "20260301"},
        headers=german | {"X-CSRFToken": factories.csrf_token(client, "/console/exports")},
    )
    assert "JJJJ-MM-TT" in answer.get_json()["errors"]["created_to"][0]
    answer = client.get("/api/v1/leads?created_to=20260301", headers=german)
    assert "Kein gültiger Zeitpunkt" in answer.get_json()["errors"]["created_to"][0]
