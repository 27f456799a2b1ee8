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
