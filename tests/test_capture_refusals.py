"""Refusals of the public form a visitor or an integrator can act on: names that show
nothing, consent of the wrong shape; in the form's language, as JSON and as a page."""

from __future__ import annotations

import html

import pytest

from leadvault import profile
from tests.conftest import make_form, process, render_token, unique_email

INVISIBLE_NAMES = [
    "\u200d\u200d",  # zero-width joiners
    "\u200c",  # zero-width non-joiner
    "\u200e\u200f",  # left-to-right, right-to-left marks
    "\u200d\u0301",  # a joiner and a combining mark: nothing to join or mark
    "\u3164",  # Hangul filler: a "letter" that shows as nothing
]
# Where those characters belong: emoji sequences, Persian, Devanagari conjuncts.
REAL_NAMES = ["👩\u200d💻", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647", "क्\u200dष", "Zoë\u200e"]


def _post(client, app, form_id: str, lang: str, as_json: bool, **values):
    body = {"email": unique_email(), "render_token": render_token(app, form_id), "lang": lang}
    body.update(values)
    if as_json:
        return client.post(f"/f/{form_id}", json=body)
    return client.post(f"/f/{form_id}", data=body)


@pytest.mark.parametrize("name", INVISIBLE_NAMES)
def test_a_name_that_shows_nothing_is_refused(app, client, name):
    form_id = make_form(app)
    english = _post(client, app, form_id, "en", True, first_name=name, consent=["newsletter"])
    assert english.status_code == 422
    assert english.get_json()["fields"] == {
        "first_name": "This name has only invisible characters. Please type your name."
    }
    german = _post(client, app, form_id, "de", False, last_name=name, consent="newsletter")
    assert german.status_code == 422
    page = html.unescape(german.get_data(as_text=True))
    assert "Dieser Name besteht nur aus unsichtbaren Zeichen." in page
    assert 'aria-invalid="true" aria-describedby="lv-last_name-error"' in page
    # Imports and the preference center's correction read the same rules.
    assert profile.field_problem("first_name", name) == (profile.NO_VISIBLE, {})
    assert profile.field_problem("company", name) is None  # only names are greeted


def test_joiners_and_marks_inside_real_names_are_accepted(app, client):
    form_id = make_form(app)
    for name in REAL_NAMES:
        response = _post(
            client,
            app,
            form_id,
            "en",
            True,
            first_name=name,
            last_name=name,
            consent=["newsletter"],
        )
        assert response.status_code == 200, (name, response.get_json())
        assert profile.field_problem("first_name", name) is None
    assert process(app) == len(REAL_NAMES)


@pytest.mark.parametrize("consent", [True, {"a": 1}, [None], [1], [["newsletter"]], 5])
def test_consent_of_the_wrong_shape_says_what_shape(app, client, consent):
    form_id = make_form(app)
    english = _post(client, app, form_id, "en", True, consent=consent)
    assert english.status_code == 422
    message = english.get_json()["fields"]["consent"]
    assert message.startswith("Please send consent as the names of the purposes agreed to")
    assert 'a list like ["newsletter"]' in message
    german = _post(client, app, form_id, "de", True, consent=consent)
    assert german.get_json()["fields"]["consent"].startswith(
        "Bitte senden Sie die Einwilligung als Namen der Zwecke"
    )


@pytest.mark.parametrize("as_json", [True, False])
def test_an_overlong_purpose_is_one_the_form_does_not_ask_for(app, client, as_json):
    form_id = make_form(app)
    response = _post(client, app, form_id, "de", as_json, consent=["x" * 41])
    assert response.status_code == 422
    text = (
        response.get_json()["fields"]["consent"]
        if as_json
        else html.unescape(response.get_data(as_text=True))
    )
    assert "Dieses Formular fragt nicht nach dieser Einwilligung." in text
    assert "Longer than" not in text
