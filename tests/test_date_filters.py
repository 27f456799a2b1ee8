"""Every date filter of the console, the API and the command line, with the extreme and
malformed days people and scripts type: never a 500. A day the calendar lacks, a year
past 9999, a wrong form or non-ASCII digits are refused naming the field (the console's
page again with the field marked and the other filters kept; the API's 422 problem; the
command's exit 2); the calendar's first and last days filter as any other (9999-12-31 as
"to": no upper bound)."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from leadvault.cli import cli
from tests import factories
from tests.test_scoring import cli_env

REFUSED = {
    "10000-01-01": "between the years 1 and 9999",
    "0000-12-31": "between the years 1 and 9999",
    "2026-02-30": "no such day",
    "2026-1-1": "2025-03-31",
    "\uff12\uff10\uff12\uff16-01-01": "2025-03-31",  # full-width digits
    "31.12.2025": "2025-03-31",
}
TAKEN = ["9999-12-31", "0001-01-01", "", "   "]


def _marked(html: str, element_id: str) -> str:
    """The opening tag of ``element_id`` and the message that describes it."""
    tag = re.search(rf'<(?:input|select) id="{element_id}"[^>]*>', html)
    assert tag, element_id
    assert 'aria-invalid="true"' in tag.group(), tag.group()
    assert f'aria-describedby="{element_id}-error"' in tag.group(), tag.group()
    message = re.search(rf'<p class="error" id="{element_id}-error">([^<]*)</p>', html)
    assert message, element_id
    return message.group(1)


def test_lead_list_marks_a_bad_day_and_keeps_the_other_filters(app):
    factories.lead(app, profile={"first_name": "Ada"})
    client, _ = factories.signed_in_client(app, "owner")
    for value, words in REFUSED.items():
        for name, element, label in (
            ("since", "f-since", "Created from"),
            ("until", "f-until", "Created to"),
        ):
            page = client.get(
                "/console/leads", query_string={name: value, "stage": "new", "utm_source": "fair"}
            )
            html = page.get_data(as_text=True)
            assert page.status_code == 400, (name, value)
            message = _marked(html, element)
            assert message.startswith(label) and words in message, message
            assert '<option value="new" selected>' in html  # the other filters kept
            assert 'value="fair"' in html
            assert "Correct the marked filters" in html and "No leads match" not in html
    for value in TAKEN:
        for name in ("since", "until"):
            assert client.get("/console/leads", query_string={name: value}).status_code == 200


def test_lead_list_names_the_field_in_german(app):
    client, _ = factories.signed_in_client(app, "owner")
    csrf = factories.csrf_token(client, "/console/leads")
    client.post("/console/language", data={"csrf_token": csrf, "lang": "de"})
    html = client.get("/console/leads?until=2026-02-30").get_data(as_text=True)
    message = _marked(html, "f-until")
    assert message.startswith("Erstellt bis") and "Diesen Tag gibt es" in message, message


def test_export_page_names_a_bad_day_and_offers_no_download(app):
    factories.lead(app, profile={"first_name": "Ada"})
    client, _ = factories.signed_in_client(app, "owner")
    csrf = factories.csrf_token(client, "/console/exports")
    for value, words in REFUSED.items():
        shown = client.get("/console/exports", query_string={"until": value, "grade": "C"})
        html = shown.get_data(as_text=True)
        assert shown.status_code == 400 and "Created to" in html and words in html, value
        assert "Download" not in html and 'href="/console/leads?' in html
        posted = client.post(
            "/console/exports", data={"since": value, "csrf_token": csrf, "column": "id"}
        )
        assert posted.status_code == 400 and "Created from" in posted.get_data(as_text=True)
    for value in TAKEN:
        assert client.get("/console/exports", query_string={"until": value}).status_code == 200
        posted = client.post(
            "/console/exports", data={"until": value, "csrf_token": csrf, "column": "id"}
        )
        assert posted.status_code == 200 and posted.mimetype == "text/csv", value


def test_privacy_page_marks_every_bad_filter_and_keeps_the_others(app):
    client, _ = factories.signed_in_client(app, "owner")
    kept = {
        "action": "lead.erased",
        "object_type": "lead",
        "actor": "user:7",
        "since": "2026-01-01",
    }
    cases = [
        ("until", "2026-02-30", "a-until", "To"),
        ("since", "10000-01-01", "a-since", "From"),
        ("actor", "x" * 81, "a-actor", "Who"),
        ("object_id", "x" * 65, "a-object", "Object"),
        ("action", "lead.vanished", "a-action", "There is no such action"),
        ("object_type", "planet", "a-type", "There is no such kind"),
    ]
    for name, value, element, start in cases:
        args = {**kept, name: value}
        page = client.get("/console/privacy", query_string=args)
        html = page.get_data(as_text=True)
        assert page.status_code == 400, name
        assert _marked(html, element).startswith(start)
        for other, typed in kept.items():
            if other == name:
                continue
            assert f'value="{typed}"' in html, (name, other)
        if name != "action":
            assert '<option value="lead.erased" selected>' in html
    cursor = client.get("/console/privacy", query_string={**kept, "before": "x"})
    html = cursor.get_data(as_text=True)
    assert cursor.status_code == 400 and "no longer exists" in html
    assert 'value="user:7"' in html and '<option value="lead.erased" selected>' in html
    for value in TAKEN:
        assert client.get("/console/privacy", query_string={"since": value}).status_code == 200


@pytest.mark.parametrize("value", [*REFUSED, "9999-12-31T23:59:59-01:00", "0001-01-01T00:00+01:00"])
def test_api_refuses_a_bad_day_with_a_422_naming_the_field(app, value):
    client, _ = factories.signed_in_client(app, "owner")
    csrf = factories.csrf_token(client, "/console/exports")
    # The words of the console and the command line (leadvault.days); a moment whose
    # offset points past the calendar's ends, the years it must lie between.
    words = REFUSED.get(value, "9999")
    for name in ("created_from", "created_to"):
        listed = client.get("/api/v1/leads", query_string={name: value})
        assert listed.status_code == 422, (name, listed.get_data(as_text=True))
        assert listed.mimetype == "application/problem+json"
        assert words in listed.get_json()["errors"][name][0]
        if "T" in value:
            continue
        exported = client.post("/api/v1/exports", json={name: value}, headers={"X-CSRFToken": csrf})
        assert exported.status_code == 422, (name, exported.get_data(as_text=True))
        assert words in exported.get_json()["errors"][name][0]


def test_api_takes_the_calendars_first_and_last_days(app):
    factories.lead(app, profile={"first_name": "Ada"})
    client, _ = factories.signed_in_client(app, "owner")
    csrf = factories.csrf_token(client, "/console/exports")
    counts = {}
    for name in ("created_from", "created_to"):
        for value in ("0001-01-01", "9999-12-31", "9999-12-31T23:59:59+00:00"):
            listed = client.get("/api/v1/leads", query_string={name: value})
            assert listed.status_code == 200, (name, value)
            counts[name, value] = len(listed.get_json()["items"])
            exported = client.post(
                "/api/v1/exports", json={name: value[:10]}, headers={"X-CSRFToken": csrf}
            )
            assert exported.status_code == 200, (name, value)
    assert counts["created_from", "0001-01-01"] == counts["created_to", "9999-12-31"] == 1
    assert counts["created_to", "0001-01-01"] == counts["created_from", "9999-12-31"] == 0


def test_command_line_days_exit_2_naming_the_option(app, tmp_path):
    factories.lead(app, profile={"first_name": "Ada"})
    runner = CliRunner()
    env = cli_env(app)
    out = str(tmp_path / "leads.csv")
    commands = (["export", "-o", out], ["leads", "list"], ["webhooks", "redeliver", "1"])
    for value, words in {**REFUSED, "": "2025-03-31", "   ": "2025-03-31"}.items():
        for command in commands:
            option = "--since" if command[0] == "webhooks" else "--created-to"
            result = runner.invoke(cli, [*command, option, value], env=env, obj=app)
            assert result.exit_code == 2, (command, value, result.output)
            assert f"'{option}'" in result.output and words in result.output, result.output
            assert "Traceback" not in result.output
    for value in ("0001-01-01", "9999-12-31"):
        result = runner.invoke(cli, ["export", "-o", out, "--created-to", value], env=env, obj=app)
        assert result.exit_code == 0, result.output
        expected = "0 leads" if value.startswith("0001") else "1 leads"
        assert expected in result.output
