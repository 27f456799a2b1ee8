"""Refusals of exports, imports, stage changes, rule versions and tokens in the staff
member's language.

``ExportError`` (with ``ColumnError``), ``MappingError``/``ImportRefused``,
``StageError``/``LeadError``, ``RuleSetError``, ``NoScoringRules`` and ``TokenError``
carry a message id with values (``leadvault.refusals.RefusedRequest``): the API answers
in the request's Accept-Language, the console in the staff member's language, the
command line in English (``str``).
"""

from __future__ import annotations

import io

import pytest

from admin import leads as lead_service
from export import imports
from export import service as export_service
from scoring import rulesets, stages
from tests import factories
from tests.factories import uow
from tests.test_api_exports import bearer

GERMAN = {"Accept-Language": "de"}


def _api(app, role: str) -> tuple[object, dict[str, str]]:
    return app.test_client(), {**bearer(factories.personal_token(app, role)), **GERMAN}


def test_the_api_answers_export_refusals_in_german(app):
    client, headers = _api(app, "privacy")
    column = client.post("/api/v1/exports", json={"columns": "email,shoe_size"}, headers=headers)
    assert column.status_code == 422
    assert column.get_json()["detail"].startswith("unbekannte Spalte „shoe_size“; bekannt sind:")
    both = client.post(
        "/api/v1/exports", json={"preset": "hubspot", "columns": "email"}, headers=headers
    )
    assert both.status_code == 422
    assert "eine CRM-Vorlage hat eigene Spalten" in both.get_json()["detail"]


def test_the_api_answers_import_refusals_in_german(app):
    client, headers = _api(app, "marketing")
    no_email = client.post(
        "/api/v1/imports", data=b"name\nx\n", content_type="text/csv", headers=headers
    )
    assert no_email.status_code == 422
    assert no_email.get_json()["detail"] == (
        "keine E-Mail-Spalte: bitte benennen Sie sie mit --map SPALTE=email (Spalten: name)"
    )
    purpose = client.post(
        "/api/v1/imports?purpose=nope",
        data=b"email\na@example.org\n",
        content_type="text/csv",
        headers=headers,
    )
    assert purpose.status_code == 422
    assert purpose.get_json()["detail"].startswith("unbekannter Zweck „nope“ (bekannt sind:")


def test_the_console_import_refuses_in_german(app):
    client, _user_id = factories.signed_in_client(app, "marketing")
    csrf = factories.csrf_token(client, "/admin/account")
    refused = client.post(
        "/console/imports?lang=de",
        data={"csrf_token": csrf, "file": (io.BytesIO(b"name\nx\n"), "x.csv"), "mode": "check"},
        content_type="multipart/form-data",
    )
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "keine E-Mail-Spalte: bitte benennen Sie sie mit --map SPALTE=email" in html
    assert "no email column" not in html


def test_the_api_answers_a_refused_stage_change_in_german(app):
    lead_id = factories.lead(app)
    client, headers = _api(app, "marketing")
    url = f"/api/v1/leads/{lead_id}/stage"
    moved = client.post(
        url, json={"stage": "disqualified", "reason": "competitor"}, headers=headers
    )
    assert moved.status_code == 200, moved.get_json()
    refused = client.post(url, json={"stage": "won", "reason": "oops"}, headers=headers)
    assert refused.status_code == 409
    assert refused.get_json()["errors"]["stage"] == [
        "ein Lead in der Phase disqualified kann nicht in die Phase won wechseln"
    ]


def test_the_api_answers_rule_version_refusals_in_german(app):
    client, headers = _api(app, "owner")
    missing = client.get("/api/v1/scoring/rules/versions/9", headers=headers)
    assert missing.status_code == 404
    assert missing.get_json()["errors"]["version"] == ["es gibt keine Regelversion 9"]
    empty = client.post("/api/v1/scoring/rules/activate", json={"text": "# x\n"}, headers=headers)
    assert empty.status_code == 422
    (text,) = empty.get_json()["errors"]["text"]
    assert text.startswith("die Regeldatei hat keine Bewertungsregel")


def test_the_console_refuses_rules_without_a_scoring_rule_in_german(app):
    client, _user_id = factories.signed_in_client(app, "marketing")
    csrf = factories.csrf_token(client, "/console/scoring")
    refused = client.post(
        "/console/scoring/activate?lang=de", data={"text": "# to do\n", "csrf_token": csrf}
    )
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "die Regeldatei hat keine Bewertungsregel (kein [[engagement]] und kein [[fit]])" in html
    assert "no scoring rule" not in html


def test_the_api_answers_token_refusals_in_german_under_their_field(app):
    console, _user_id = factories.signed_in_client(app, "viewer")
    csrf = factories.csrf_token(console, "/admin/account")
    headers = {"X-CSRFToken": csrf, **GERMAN}
    beyond = console.post(
        "/api/v1/tokens",
        json={"name": "x", "scopes": ["leads:write"], "days": 5},
        headers=headers,
    )
    assert beyond.status_code == 422
    assert beyond.get_json()["errors"]["scopes"] == [
        "die Rolle des Kontos erlaubt „leads:write“ nicht"
    ]
    too_long = console.post(
        "/api/v1/tokens",
        json={"name": "x", "scopes": ["leads:read"], "days": 3650},
        headers=headers,
    )
    assert too_long.status_code == 422
    (days,) = too_long.get_json()["errors"]["days"]
    assert days.startswith("ein Token gilt 1 bis ")


def test_the_api_answers_a_foreign_cursor_in_german(app):
    client, headers = _api(app, "owner")
    for url in ("/api/v1/leads?cursor=nonsense", "/api/v1/handoffs?cursor=nonsense"):
        refused = client.get(url, headers=headers)
        assert refused.status_code == 422, url
        assert refused.get_json()["errors"]["cursor"] == [
            "Kein Cursor, den diese API ausgegeben hat."
        ]


def test_the_command_line_keeps_the_english_text(app):
    lead_id = factories.lead(app)
    with uow(app) as s:
        with pytest.raises(export_service.ExportError) as column:
            export_service.prepare(s, columns="email,shoe_size")
        assert str(column.value).startswith("unknown column 'shoe_size'; known: ")
        assert column.value.translated("de").startswith("unbekannte Spalte „shoe_size“")
        with pytest.raises(rulesets.RuleSetError) as version:
            rulesets.by_version(s, 9)
        assert str(version.value) == "there is no rules version 9"
        state = stages.state_of(s, lead_id)
        with pytest.raises(stages.StageError) as stage:
            stages.transition(s, state, "won", cause_kind="person", cause="test")
        assert str(stage.value) == "a lead in stage new cannot move to won"
    with pytest.raises(imports.MappingError) as mapping:
        imports.import_mapping.check_encoding("klingon")
    assert str(mapping.value) == "unknown encoding 'klingon' (e.g. utf-8, cp1252)"
    assert str(rulesets.NoScoringRules()).startswith("the rules file has no scoring rule")
    assert issubclass(lead_service.LeadError, ValueError)
