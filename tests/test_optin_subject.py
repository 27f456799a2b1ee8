"""The whitepaper opt-in mail names what the visitor saw, never the form's name.

A form's name is for staff ("For staff only; visitors see the title"); its title is
what visitors read. The opt-in mail's subject names the whitepaper by the title in
the lead's language (else the other language's title, which the form showed), and
without any title says only "Please confirm your email address", translated. The
preference center names the form the same way. Through real SMTP, in en and de.
"""

from __future__ import annotations

import pytest

from capture.definitions import PurposeSpec
from tests.conftest import deliver, make_form, render_token
from tests.test_consent_rights import link_in, manage_link, text_of

HOST = "https://www.example.com"
INTERNAL = "WP Q3 retargeting (do not show)"
GENERIC = {
    "en": "Please confirm your email address",
    "de": "Bitte bestätigen Sie Ihre E-Mail-Adresse",
}
NAMED = {
    "en": "Please confirm your request for “%s”",
    "de": "Bitte bestätigen Sie Ihre Anfrage für „%s“",
}
SOURCE_UNTITLED = {
    "en": "A whitepaper on www.example.com",
    "de": "Ein Whitepaper auf www.example.com",
}


def _whitepaper_form(app, title) -> str:
    return make_form(
        app,
        name=INTERNAL,
        kind="whitepaper",
        purposes=[PurposeSpec("whitepaper", True)],
        allowed_origins=[HOST],
        title=title,
    )


def _optin_mail(app, client, smtp_server, form_id: str, email: str, lang: str):
    response = client.post(
        f"/f/{form_id}",
        json={
            "email": email,
            "consent": ["whitepaper"],
            "render_token": render_token(app, form_id),
            "lang": lang,
            "page_url": f"{HOST}/guides",
        },
        headers={"Origin": HOST},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    before = len(smtp_server.messages)
    deliver(app)
    [mail] = smtp_server.messages[before:]
    assert mail["To"] == email
    assert mail["Content-Language"] == lang
    return mail


def _parts(mail) -> list[str]:
    return [
        str(mail["Subject"]),
        mail.get_body(preferencelist=("plain",)).get_content(),
        mail.get_body(preferencelist=("html",)).get_content(),
    ]


@pytest.mark.parametrize("lang", ["en", "de"])
@pytest.mark.parametrize(
    ("title", "expected"),
    [
        (None, None),  # no title at all: the generic subject
        ({}, None),
        ({"en": " ", "de": ""}, None),  # blank titles are dropped
        ({"en": "Cloud field guide"}, "Cloud field guide"),  # the only title, as shown
        ({"en": "Cloud field guide", "de": "Cloud-Leitfaden"}, "per language"),
    ],
    ids=["none", "empty", "blank", "english-only", "both"],
)
def test_whitepaper_optin_subject_names_only_what_the_visitor_saw(
    app, client, smtp_server, lang, title, expected
):
    form_id = _whitepaper_form(app, title)
    email = f"reader.{lang}@example.org"
    mail = _optin_mail(app, client, smtp_server, form_id, email, lang)
    if expected is None:
        assert mail["Subject"] == GENERIC[lang]
    else:
        shown = title[lang] if expected == "per language" else expected
        assert mail["Subject"] == NAMED[lang] % shown
    for part in _parts(mail):
        assert INTERNAL not in part
    # The link still confirms: the subject changed, nothing else.
    assert "/c/" in link_in(text_of(mail), "c")


@pytest.mark.parametrize("lang", ["en", "de"])
def test_preference_center_never_names_the_form_by_its_staff_name(app, client, smtp_server, lang):
    form_id = _whitepaper_form(app, None)
    email = f"prefs.{lang}@example.org"
    _optin_mail(app, client, smtp_server, form_id, email, lang)
    prefs = manage_link(app, client, smtp_server, email)
    body = client.get(prefs).get_data(as_text=True)
    assert INTERNAL not in body
    assert SOURCE_UNTITLED[lang] in body
