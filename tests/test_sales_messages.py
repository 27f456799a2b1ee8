"""Sales set-up refusals (scoring.routing, scoring.sales_team) were English f-strings the
German console showed as they were, and the admin API put every refusal of a salesperson
create under "email". They are message ids with values and name the field they are
about: the console shows them in its language next to that field, the API answers in
the request's language under it."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest

from leadvault import clock, i18n
from scoring import routing, sales_team
from tests import factories
from tests.factories import uow


def _error_of(page: str, field: str) -> str:
    found = re.search(rf'<p class="error" id="{field}-error">([^<]*)</p>', page)
    assert found, (field, page)
    return html.unescape(found.group(1))


def _german_console(app):
    client, _ = factories.signed_in_client(app, "owner")
    csrf = factories.csrf_token(client, "/console/sales")
    client.post("/console/language", data={"csrf_token": csrf, "lang": "de"})
    return client, csrf


@pytest.mark.parametrize(
    ("refuse", "field", "german"),
    [
        (
            lambda s: routing.add_person(s, email="a@sales.example", name="  "),
            "name",
            "Bitte geben Sie einen Namen an.",
        ),
        (
            lambda s: routing.add_person(s, email="a@sales.example", name="A\tB"),
            "name",
            "Der Name enthält das Steuerzeichen U+0009 (einen Zeilenumbruch, Tabulator o. Ä.); "
            "bitte geben Sie ihn in einer Zeile an.",
        ),
        (
            lambda s: routing.add_person(s, email="a@@sales", name="Anna"),
            "email",
            "Das ist keine E-Mail-Adresse.",
        ),
        (
            lambda s: routing.add_person(s, email="a@sales.example", name="A", weekly_capacity=-1),
            "weekly_capacity",
            "Die Leads pro Woche müssen mindestens 0 sein.",
        ),
        (
            lambda s: routing.add_person(s, email="a@sales.example", name="A", language="fr"),
            "language",
            "Die Sprache muss en oder de sein.",
        ),
        (
            lambda s: routing.add_team(s, "dach", "random"),
            "strategy",
            "Die Strategie muss eine von round_robin, least_loaded sein.",
        ),
        (
            lambda s: routing.add_member(s, "nowhere", "a@sales.example"),
            "team",
            "Es gibt kein Team „nowhere“.",
        ),
        (
            lambda s: sales_team.person(s, 2**31 - 1),
            None,
            "Es gibt keine Vertriebsperson 2147483647.",
        ),
    ],
)
def test_refusals_are_message_ids_with_values_and_a_field(app, refuse, field, german):
    with uow(app) as s, pytest.raises(routing.SalesError) as caught:
        refuse(s)
    refusal = caught.value
    assert refusal.field == field
    assert i18n.translate("de", refusal.message, **refusal.values) == german
    # The command line keeps the English text, values filled in.
    assert str(refusal) == i18n.translate("en", refusal.message, **refusal.values)


def test_the_language_refusal_names_the_languages_of_i18n(app, monkeypatch):
    # Spelled from the tuple, not again in the message: a language added is named.
    monkeypatch.setattr(i18n, "LANGUAGES", ("en", "de", "fr"))
    with pytest.raises(routing.SalesError) as caught:
        routing.check_routing_fields(language="xx")
    assert str(caught.value) == "The language must be en, de or fr."
    assert caught.value.translated("de") == "Die Sprache muss en, de oder fr sein."


def test_the_german_console_shows_each_refusal_in_german_next_to_its_field(app):
    client, csrf = _german_console(app)
    control = client.post(
        "/console/sales/people",
        data={"name": "Anna\x0bB", "email": "anna@sales.example", "csrf_token": csrf},
    )
    assert control.status_code == 422
    page = control.get_data(as_text=True)
    assert _error_of(page, "name").startswith("Der Name enthält das Steuerzeichen U+000B")
    assert 'id="email-error"' not in page
    made = client.post(
        "/console/sales/people",
        data={"name": "Anna", "email": "anna@sales.example", "csrf_token": csrf},
    )
    assert made.status_code == 302
    twice = client.post(
        "/console/sales/people",
        data={"name": "Other", "email": "ANNA@sales.example", "csrf_token": csrf},
    )
    assert twice.status_code == 422
    assert _error_of(twice.get_data(as_text=True), "email") == (
        "Es gibt schon eine Vertriebsperson mit dieser Adresse."
    )

    assert (
        client.post("/console/sales/teams", data={"name": "dach", "csrf_token": csrf}).status_code
        == 302
    )
    team_again = client.post("/console/sales/teams", data={"name": "dach", "csrf_token": csrf})
    assert team_again.status_code == 422
    assert _error_of(team_again.get_data(as_text=True), "name") == "Ein Team „dach“ gibt es schon."

    with uow(app) as s:
        anna = sales_team.roster(s)[0]
    today = clock.now().date()
    for starts_on, ends_on, german in (
        (today, today - dt.timedelta(days=1), "Die Abwesenheit endet, bevor sie beginnt."),
        (
            today - dt.timedelta(days=5),
            today - dt.timedelta(days=4),
            "Die Abwesenheit ist schon vorbei.",
        ),
        (today, today + dt.timedelta(days=400), "Eine Abwesenheit dauert höchstens 366 Tage."),
    ):
        refused = client.post(
            "/console/sales/absences",
            data={
                "person_id": str(anna.id),
                "starts_on": str(starts_on),
                "ends_on": str(ends_on),
                "csrf_token": csrf,
            },
        )
        assert refused.status_code == 422
        assert _error_of(refused.get_data(as_text=True), "ends_on") == german


def test_the_api_names_the_field_of_each_refusal_in_the_requests_language(app):
    client, _ = factories.signed_in_client(app, "owner")
    headers = {"X-CSRFToken": factories.csrf_token(client, "/admin/account")}
    german = {**headers, "Accept-Language": "de"}
    made = client.post(
        "/api/v1/salespeople", json={"email": "ben@sales.example", "name": "Ben"}, headers=headers
    )
    assert made.status_code == 201, made.get_data(as_text=True)

    again = client.post(
        "/api/v1/salespeople", json={"email": "BEN@sales.example", "name": "B"}, headers=german
    )
    assert again.status_code == 409
    assert again.get_json()["errors"] == {
        "email": ["Es gibt schon eine Vertriebsperson mit dieser Adresse."]
    }
    # A team id that does not exist is about team_ids, not the address (it was "email").
    no_team = client.post(
        "/api/v1/salespeople",
        json={"email": "cleo@sales.example", "name": "Cleo", "team_ids": [2**31 - 1]},
        headers=headers,
    )
    assert no_team.status_code == 404
    assert no_team.get_json()["errors"] == {"team_ids": ["There is no team 2147483647."]}
    bad_name = client.post(
        "/api/v1/salespeople",
        json={"email": "dora@sales.example", "name": "Dora\nX"},
        headers=german,
    )
    assert bad_name.status_code == 422
    errors = bad_name.get_json()["errors"]
    assert list(errors) == ["name"]
    assert errors["name"][0].startswith("Der Name enthält das Steuerzeichen U+000A")

    team = client.post("/api/v1/teams", json={"name": "dach"}, headers=headers).get_json()
    team_again = client.post("/api/v1/teams", json={"name": "dach"}, headers=german)
    assert team_again.status_code == 409
    assert team_again.get_json()["errors"] == {"name": ["Ein Team „dach“ gibt es schon."]}
    not_member = client.delete(
        f"/api/v1/teams/{team['id']}/members/{made.get_json()['id']}", headers=german
    )
    assert not_member.status_code == 404
    assert not_member.get_json()["errors"] == {
        "person_id": [f"Die Vertriebsperson {made.get_json()['id']} ist nicht in diesem Team."]
    }
    today = clock.now().date()
    over = client.post(
        "/api/v1/absences",
        json={
            "person_id": made.get_json()["id"],
            "starts_on": str(today - dt.timedelta(days=3)),
            "ends_on": str(today - dt.timedelta(days=2)),
        },
        headers=german,
    )
    assert over.status_code == 422
    assert over.get_json()["errors"] == {"ends_on": ["Die Abwesenheit ist schon vorbei."]}
