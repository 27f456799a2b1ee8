"""The refusals of scoring's schemas (event payloads, rules activation, team names) were
English text the German console and API showed as they were. They are message ids: a
German request gets them in German, an English one in English, in the same process."""

from __future__ import annotations

import datetime as dt
import html
import re
import uuid

import pytest

from leadvault import api, clock
from scoring import schemas
from tests import factories
from tests.factories import uow

GERMAN = {"Accept-Language": "de"}
ENGLISH = {"Accept-Language": "en"}


def _token(app) -> dict[str, str]:
    with uow(app) as s:
        token = api.create_token(s, f"t-{uuid.uuid4().hex[:6]}", ["events:write"])
    return {"Authorization": f"Bearer {token}"}


def _event(**fields):
    return {"type": "page_view", "lead_id": str(uuid.uuid4()), **fields}


@pytest.mark.parametrize(
    ("batch", "german", "english"),
    [
        (
            [_event(type="Page View")],
            "events[0].type: muss ein kleingeschriebener Name wie page_view sein",
            "events[0].type: must be a lower-case name such as page_view",
        ),
        (
            [_event(email="a@b.example")],
            "events[0].lead_id: genau eines von lead_id und email angeben",
            "events[0].lead_id: give exactly one of lead_id and email",
        ),
        (
            [_event(properties={f"p{i}": i for i in range(schemas.MAX_PROPERTIES + 1)})],
            f"events[0].properties: höchstens {schemas.MAX_PROPERTIES} Eigenschaften",
            f"events[0].properties: at most {schemas.MAX_PROPERTIES} properties",
        ),
        (
            [_event(properties={"nested": [1]})],
            "events[0].properties: 'nested' muss eine Zeichenkette, eine Zahl oder ein "
            "Wahrheitswert sein",
            "events[0].properties: 'nested' must be a string, number or boolean",
        ),
        (
            [_event(properties={"k": "x" * schemas.MAX_PROPERTIES_BYTES})],
            f"events[0].properties: Eigenschaften überschreiten {schemas.MAX_PROPERTIES_BYTES} "
            "Bytes",
            f"events[0].properties: properties exceed {schemas.MAX_PROPERTIES_BYTES} bytes",
        ),
        (
            [_event(occurred_at=(clock.now() + dt.timedelta(days=1)).isoformat())],
            "events[0].occurred_at: liegt in der Zukunft",
            "events[0].occurred_at: lies in the future",
        ),
        (
            [_event(occurred_at=(clock.now() - dt.timedelta(days=800)).isoformat())],
            "events[0].occurred_at: ist mehr als zwei Jahre alt",
            "events[0].occurred_at: is more than two years old",
        ),
        (
            [],
            f"events: muss 1 bis {schemas.MAX_BATCH} Ereignisse enthalten",
            f"events: must hold 1 to {schemas.MAX_BATCH} events",
        ),
    ],
)
def test_the_event_batch_refuses_in_the_requests_language(app, client, batch, german, english):
    auth = _token(app)
    for language, expected in ((GERMAN, german), (ENGLISH, english), (GERMAN, german)):
        reply = client.post("/api/v1/events", json={"events": batch}, headers=auth | language)
        assert reply.status_code == 422, reply.get_data(as_text=True)
        body = reply.get_json()
        assert body["error"] == expected
        # The field → messages map carries the same text.
        assert expected.split(": ", 1)[1] in str(body["errors"])


def test_a_browser_event_is_refused_in_the_requests_language(client):
    body = {"token": "t", "type": "Page View"}
    german = client.post("/api/v1/track", json=body, headers=GERMAN)
    assert german.status_code == 422
    assert german.get_json()["error"] == "type: muss ein kleingeschriebener Name wie page_view sein"
    english = client.post("/api/v1/track", json=body, headers=ENGLISH)
    assert english.get_json()["error"] == "type: must be a lower-case name such as page_view"


def test_the_api_refuses_an_activation_in_the_requests_language(app):
    client, _ = factories.signed_in_client(app, "owner")
    headers = {"X-CSRFToken": factories.csrf_token(client, "/admin/account")}
    both = {"text": "x", "version": 1}
    path = "/api/v1/scoring/rules/activate"
    german = client.post(path, json=both, headers=headers | GERMAN)
    assert german.status_code == 422
    assert german.get_json()["errors"] == {"text": ["genau eines von text und version angeben"]}
    english = client.post(path, json=both, headers=headers | ENGLISH)
    assert english.get_json()["errors"] == {"text": ["give exactly one of text and version"]}
    team = client.post("/api/v1/teams", json={"name": "Sales Team"}, headers=headers | GERMAN)
    assert team.status_code == 422
    assert team.get_json()["errors"] == {"name": ["Kleinbuchstaben, Ziffern, _ oder -"]}


def test_the_german_console_shows_a_team_names_rule_in_german(app):
    client, _ = factories.signed_in_client(app, "owner")
    csrf = factories.csrf_token(client, "/console/sales")
    client.post("/console/language", data={"csrf_token": csrf, "lang": "de"})
    refused = client.post("/console/sales/teams", data={"name": "Sales Team", "csrf_token": csrf})
    assert refused.status_code == 422
    found = re.search(
        r'<p class="error" id="name-error">([^<]*)</p>', refused.get_data(as_text=True)
    )
    assert found and html.unescape(found.group(1)) == "Kleinbuchstaben, Ziffern, _ oder -"


# --- marshmallow's own messages and the event endpoints' refusals ------------------------


@pytest.mark.parametrize(
    ("event", "german", "english"),
    [
        (
            {"lead_id": str(uuid.uuid4())},
            "events[0].type: Pflichtfeld: Bitte geben Sie einen Wert an.",
            "events[0].type: Missing data for required field.",
        ),
        (
            _event(lead_id="lead-7"),
            "events[0].lead_id: Keine gültige UUID.",
            "events[0].lead_id: Not a valid UUID.",
        ),
        (
            _event(colour="red"),
            "events[0].colour: Unbekanntes Feld.",
            "events[0].colour: Unknown field.",
        ),
    ],
)
def test_marshmallows_own_refusals_are_in_the_requests_language(
    app, client, event, german, english
):
    auth = _token(app)
    for language, expected in ((GERMAN, german), (ENGLISH, english)):
        reply = client.post("/api/v1/events", json={"events": [event]}, headers=auth | language)
        assert reply.status_code == 422
        assert reply.get_json()["error"] == expected
        assert expected.split(": ", 1)[1] in str(reply.get_json()["errors"])


def test_the_api_and_console_show_marshmallows_choices_and_ranges_in_german(app):
    client, _ = factories.signed_in_client(app, "owner")
    csrf = factories.csrf_token(client, "/console/sales")
    headers = {"X-CSRFToken": csrf}
    team = client.post(
        "/api/v1/teams", json={"name": "sales", "strategy": "fastest"}, headers=headers | GERMAN
    )
    assert team.status_code == 422
    assert team.get_json()["errors"] == {
        "strategy": ["Muss einer dieser Werte sein: round_robin, least_loaded."]
    }
    version = client.post("/api/v1/scoring/rules/activate", json={"version": 0}, headers=headers)
    assert version.get_json()["errors"] == {
        "version": ["Must be greater than or equal to 1 and less than or equal to 2147483647."]
    }
    client.post("/console/language", data={"csrf_token": csrf, "lang": "de"})
    for weight, expected in (
        ("many", "Keine gültige ganze Zahl."),
        ("0", "Muss mindestens 1 und höchstens 100 sein."),
    ):
        refused = client.post(
            "/console/sales/people",
            data={
                "csrf_token": csrf,
                "email": "seller@example.com",
                "name": "Seller",
                "language": "de",
                "weight": weight,
                "weekly_capacity": "10",
            },
        )
        assert refused.status_code == 422
        found = re.search(
            r'<p class="error" id="weight-error">([^<]*)</p>', refused.get_data(as_text=True)
        )
        assert found and html.unescape(found.group(1)) == expected


def test_the_event_endpoints_own_refusals_are_in_the_requests_language(app, client):
    auth = _token(app)
    events = client.post("/api/v1/events", json=[1], headers=auth | GERMAN)
    assert events.status_code == 400
    assert events.get_json()["error"] == (
        'der Inhalt muss ein JSON-Objekt wie {"events": [...]} sein'
    )
    track = client.post("/api/v1/track", json=[1], headers=GERMAN)
    assert track.status_code == 400
    assert track.get_json()["error"] == "der Inhalt muss ein JSON-Objekt sein"
    forged = client.post(
        "/api/v1/track", json={"token": "forged", "type": "page_view"}, headers=GERMAN
    )
    assert forged.status_code == 403
    assert forged.get_json()["error"] == "das Tracking-Token ist nicht gültig"
    english = client.post(
        "/api/v1/track", json={"token": "forged", "type": "page_view"}, headers=ENGLISH
    )
    assert english.get_json()["error"] == "the tracking token is not valid"
