"""The import report's per-line texts and the rules file's problems in the reader's language.

An import line's consent and detail are notes (message ids with values): the console
shows them in the staff member's language, the API in the request's, the command line
and its ``--report`` file in English. A rules file's problem (``RulesError``, through
``rulesets.Problem``) likewise: the API's ``errors.text`` and validate ``message``, the
console's editor, and the English ``source:line: reason`` of ``leadvault scoring``.
"""

from __future__ import annotations

import csv
import io

import pytest
from click.testing import CliRunner

from leadvault import i18n
from leadvault.cli import cli
from leadvault.profile import NO_LINKS
from scoring import rules, rulesets
from tests import factories
from tests.test_api_exports import bearer
from tests.test_scoring import cli_env

GERMAN = {"Accept-Language": "de"}
PROOF = "Yes, send me the monthly newsletter."


def _csv() -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows(
        [
            ["email", "first_name", "optin_at", "optin_source", "optin_text"],
            ["ann@example.org", "Ann", "", "", ""],  # 2: re-permission mail
            ["nope", "", "", "", ""],  # 3: refused address
            ["ann@example.org", "", "", "", ""],  # 4: the same address as line 2
            ["bo@example.org", "see https://bo.example", "", "", ""],  # 5: a capture check
            ["cy@example.org", "Cy", "2022-05-04T10:30:00Z", "Fair", PROOF],  # 6: proof
            ["di@example.org", "Di", "2022-05-04T10:30:00Z", "", ""],  # 7: half a proof
        ]
    )
    return buffer.getvalue().encode()


GERMAN_LINES = {
    2: ("Mail zur erneuten Einwilligung vorgemerkt: newsletter", ""),
    3: ("", "email: keine gültige Adresse"),
    4: ("", "dieselbe Adresse wie Zeile 2"),
    5: ("", "first_name: Bitte lassen Sie Webadressen in diesem Feld weg."),
    6: ("Einwilligung mit Nachweis übernommen: newsletter", ""),
    7: (
        "Mail zur erneuten Einwilligung vorgemerkt: newsletter",
        "kein vollständiger Einwilligungsnachweis (optin_source, optin_text leer)",
    ),
}
ENGLISH_LINES = {
    2: ("re-permission mail queued: newsletter", ""),
    3: ("", "email: not a valid address"),
    4: ("", "same address as line 2"),
    5: ("", f"first_name: {NO_LINKS}"),
    6: ("consent imported with proof: newsletter", ""),
    7: (
        "re-permission mail queued: newsletter",
        "no complete proof of consent (optin_source, optin_text empty)",
    ),
}


def _api_import(app, headers: dict[str, str]) -> dict[int, tuple[str, str]]:
    client = app.test_client()
    token = bearer(factories.personal_token(app, "marketing"))
    answer = client.post(
        "/api/v1/imports?dry_run=true",
        data=_csv(),
        content_type="text/csv",
        headers={**token, **headers},
    )
    assert answer.status_code == 200, answer.get_json()
    return {o["line"]: (o["consent"], o["detail"]) for o in answer.get_json()["outcomes"]}


def test_the_api_reports_each_line_in_the_requests_language(app):
    assert i18n.translate("de", NO_LINKS) in GERMAN_LINES[5][1]
    assert _api_import(app, GERMAN) == GERMAN_LINES
    assert _api_import(app, {"Accept-Language": "en"}) == ENGLISH_LINES


def test_the_console_reports_each_line_in_the_staff_members_language(app):
    client, _user_id = factories.signed_in_client(app, "marketing")
    csrf = factories.csrf_token(client, "/admin/account")
    checked = client.post(
        "/console/imports?lang=de",
        data={"csrf_token": csrf, "file": (io.BytesIO(_csv()), "x.csv"), "mode": "check"},
        content_type="multipart/form-data",
    )
    html = checked.get_data(as_text=True)
    assert checked.status_code == 200
    german = {text for pair in GERMAN_LINES.values() for text in pair if text}
    english = {text for pair in ENGLISH_LINES.values() for text in pair if text}
    assert {text for text in german if text not in html} == set()
    assert {text for text in english if text in html} == set()
    # The purposes to import consent for are named, not shown by their keys.
    assert '<label for="i-p-newsletter">Newsletter per E-Mail</label>' in html


def test_the_command_line_and_its_report_file_stay_english(app, tmp_path):
    path, report = tmp_path / "contacts.csv", tmp_path / "report.csv"
    path.write_bytes(_csv())
    result = CliRunner().invoke(
        cli, ["import", str(path), "--dry-run", "--report", str(report)], obj=app
    )
    assert result.exit_code == 0, result.output
    assert "line 2: created; re-permission mail queued: newsletter" in result.output
    assert "line 4: merged; same address as line 2" in result.output
    assert f"line 5: refused; first_name: {NO_LINKS}" in result.output
    written = {int(row[0]): (row[2], row[3]) for row in list(csv.reader(report.open()))[1:]}
    assert written == ENGLISH_LINES


BAD_SECTION = rules.example_text() + "\n[nonsense]\nx = 1\n"
SECTION_LINE = BAD_SECTION.splitlines().index("[nonsense]") + 1
BAD_VALUE = "[stages]\nmql_score = -\n"


def test_the_api_names_a_rules_files_problem_in_the_requests_language(app, monkeypatch):
    client = app.test_client()
    headers = {**bearer(factories.personal_token(app, "owner")), **GERMAN}
    validated = client.post(
        "/api/v1/scoring/rules/validate", json={"text": BAD_SECTION}, headers=headers
    )
    assert validated.get_json() == {
        "valid": False,
        "line": SECTION_LINE,
        "message": "unbekannter Abschnitt „nonsense“",
    }
    for url in ("/api/v1/scoring/rules/dry-run", "/api/v1/scoring/rules/activate"):
        refused = client.post(url, json={"text": BAD_SECTION}, headers=headers)
        assert refused.status_code == 422, url
        assert refused.get_json()["errors"]["text"] == [
            f"Zeile {SECTION_LINE}: unbekannter Abschnitt „nonsense“"
        ]
    syntax = client.post("/api/v1/scoring/rules/dry-run", json={"text": BAD_VALUE}, headers=headers)
    assert syntax.get_json()["errors"]["text"] == ["Zeile 2: Ungültiger Wert"]
    number = client.post(
        "/api/v1/scoring/rules/dry-run",
        json={"text": '[stages]\nmql_score = "x"\n'},
        headers=headers,
    )
    assert number.get_json()["errors"]["text"] == ["Zeile 2: mql_score muss eine Zahl sein"]

    def busy(session, text, *, source):
        raise rules.RulesError(
            "the rules changed too often at once; please load them again", source=source
        )

    monkeypatch.setattr(rules, "load", busy)
    conflict = client.post(
        "/api/v1/scoring/rules/activate", json={"text": rules.example_text()}, headers=headers
    )
    assert conflict.status_code == 409
    assert conflict.get_json()["errors"]["text"] == [
        "die Regeln wurden zu oft gleichzeitig geändert; bitte laden Sie sie erneut"
    ]


def test_the_console_editor_names_the_problem_in_the_staff_members_language(app):
    client, _user_id = factories.signed_in_client(app, "marketing")
    csrf = factories.csrf_token(client, "/console/scoring")
    refused = client.post(
        "/console/scoring?lang=de", data={"text": BAD_SECTION, "csrf_token": csrf}
    )
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert f"Zeile {SECTION_LINE}: unbekannter Abschnitt „nonsense“" in html
    assert "unknown section" not in html


def test_the_command_line_keeps_the_english_rules_problem(app, tmp_path):
    with pytest.raises(rules.RulesError) as caught:
        rules.parse(BAD_SECTION)
    assert str(caught.value) == f"rules.toml:{SECTION_LINE}: unknown section 'nonsense'"
    assert caught.value.translated("de") == "unbekannter Abschnitt „nonsense“"
    problem = rulesets.validate(BAD_VALUE)
    assert problem is not None and str(problem) == "line 2: Invalid value"
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD_SECTION)
    refused = CliRunner().invoke(
        cli, ["scoring", "dry-run", str(bad)], env={**cli_env(app), "LANG": "de_DE"}, obj=app
    )
    assert refused.exit_code == 1
    assert f"{bad}:{SECTION_LINE}: unknown section 'nonsense'" in refused.output
