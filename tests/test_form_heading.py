"""The hosted form page's heading and title never show the form's name.

The console says of the name "For staff only; visitors see the title". The hosted page
(``GET /f/<id>``) shows the title in the visitor's language, else the other language's;
a form without any title is headed by what it is for (newsletter, whitepaper, contact),
translated, never by its name.
"""

from __future__ import annotations

import re

import pytest

from capture.definitions import PurposeSpec
from tests.conftest import make_form

INTERNAL = "Q3 retargeting list (internal)"
DEFAULTS = {
    ("newsletter", "en"): "Subscribe to our newsletter",
    ("newsletter", "de"): "Newsletter abonnieren",
    ("whitepaper", "en"): "Download the whitepaper",
    ("whitepaper", "de"): "Whitepaper herunterladen",
    ("contact", "en"): "Contact us",
    ("contact", "de"): "Kontakt aufnehmen",
}
PURPOSES = {
    "newsletter": [PurposeSpec("newsletter", True)],
    "whitepaper": [PurposeSpec("whitepaper", True)],
    "contact": [PurposeSpec("newsletter", False)],
}


def _heading_and_title(client, form_id: str, lang: str) -> tuple[str, str]:
    response = client.get(f"/f/{form_id}?lang={lang}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    [h1] = re.findall(r"<h1>(.*?)</h1>", page, re.S)
    [title] = re.findall(r"<title>(.*?)</title>", page, re.S)
    return h1.strip(), title.strip()


@pytest.mark.parametrize("kind", ["newsletter", "whitepaper", "contact"])
@pytest.mark.parametrize("lang", ["en", "de"])
def test_without_a_title_the_page_says_what_the_form_is_for(app, client, kind, lang):
    form_id = make_form(app, name=INTERNAL, kind=kind, purposes=PURPOSES[kind])
    h1, title = _heading_and_title(client, form_id, lang)
    assert h1 == DEFAULTS[kind, lang]
    assert title.startswith(DEFAULTS[kind, lang])
    assert "Q3 retargeting" not in client.get(f"/f/{form_id}?lang={lang}").get_data(as_text=True)


def test_the_title_in_the_visitors_language_else_the_other(app, client):
    form_id = make_form(app, name=INTERNAL, title={"en": "Monthly tips", "de": "Monatstipps"})
    assert _heading_and_title(client, form_id, "de")[0] == "Monatstipps"
    only_en = make_form(app, name=INTERNAL, title={"en": "Monthly tips"})
    assert _heading_and_title(client, only_en, "de")[0] == "Monthly tips"
    assert _heading_and_title(client, only_en, "en")[0] == "Monthly tips"
