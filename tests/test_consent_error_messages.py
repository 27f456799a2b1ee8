"""A purpose without a consent text in the visitor's language, asked for again from the
preference center: consent.rights.grant refused it with an f-string ConsentError nobody
caught (a 500, and a message no catalogue could translate). It is a page naming the
problem in the visitor's language; the other two refusals are message ids too."""

from __future__ import annotations

import pytest

from consent import rights, service
from consent.models import Purpose
from leadvault import i18n
from leadvault.models import Lead
from tests.conftest import unique_email
from tests.factories import uow
from tests.test_consent_rights import confirmed_lead, csrf_of, lead_of, manage_link
from tests.test_console_browser import served  # noqa: F401 - fixture


def test_asking_for_a_purpose_without_a_text_names_it_in_german(app, client, smtp_server):
    email = unique_email("untexted")
    confirmed_lead(app, client, smtp_server, email)
    prefs = manage_link(app, client, smtp_server, email)
    lead_id = lead_of(app, email).id
    with uow(app) as s:
        s.add(Purpose(key="events", marketing=True))
        s.get(Lead, lead_id).language = "de"  # the preference center speaks the lead's
    page = client.get(prefs)
    asked = client.post(prefs + "/grant", data={"csrf_token": csrf_of(page), "purpose": "events"})
    assert asked.status_code == 409, asked.status_code
    body = asked.get_data(as_text=True)
    assert "Für „events“ gibt es noch keinen Einwilligungstext." in body, body


@pytest.mark.parametrize(
    ("refusal", "german"),
    [
        (
            lambda s, lead: rights.queue_marketing_mail(
                s, lead, "events", template="welcome", subject="s", text="t", html="h"
            ),
            "Für „events“ liegt keine Einwilligung vor.",
        ),
    ],
)
def test_refusals_are_message_ids_with_values(app, client, smtp_server, refusal, german):
    email = unique_email("refused")
    confirmed_lead(app, client, smtp_server, email)
    lead_id = lead_of(app, email).id
    with uow(app) as s:
        lead = s.get(Lead, lead_id)
        with pytest.raises(service.ConsentError) as caught:
            refusal(s, lead)
    assert caught.value.values == {"purpose": "events"}
    assert i18n.translate("de", caught.value.message, **caught.value.values) == german


@pytest.mark.browser
def test_the_refusal_page_in_chromium(served, browser, smtp_server):  # noqa: F811
    """The preference center's refusal as the lead sees it (de, en); a screenshot each."""
    from tests.conftest import screenshot
    from tests.test_console_browser import CHROMIUM, shots

    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed")
    app, url = served
    client = app.test_client()
    email = unique_email("untexted-browser")
    confirmed_lead(app, client, smtp_server, email)
    prefs = manage_link(app, client, smtp_server, email)
    lead_id = lead_of(app, email).id
    with uow(app) as s:
        s.add(Purpose(key="events", marketing=True))
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        for lang, message in (
            ("de", "Für „events“ gibt es noch keinen Einwilligungstext."),
            ("en", "There is no consent text for “events” yet."),
        ):
            with uow(app) as s:
                s.get(Lead, lead_id).language = lang
            page.goto(url + prefs)
            page.locator("form[action$='/grant']:has(input[value=events]) button").click()
            page.wait_for_load_state()
            assert message in page.inner_text("main"), page.inner_text("main")
            assert page.locator("h1").count() == 1
            screenshot(page, shots() / f"prefs-no-text-{lang}.png", full_page=True)
    finally:
        context.close()
