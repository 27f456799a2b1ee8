"""The hosted form's thank-you page: the heading names the step that is left, the text
thanks and says what to do; they no longer both say "Thank you" (in every language)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import make_form, render_token, unique_email

EXPECTED = {
    "en": ("Almost done", "Thank you! Please check your inbox and confirm your email address."),
    "de": (
        "Fast geschafft",
        "Vielen Dank! Bitte sehen Sie in Ihr Postfach und bestätigen Sie Ihre E-Mail-Adresse.",
    ),
}


@pytest.mark.parametrize("lang", sorted(EXPECTED))
def test_the_heading_says_what_is_left_and_the_text_how(app, client, lang):
    form_id = make_form(app)
    page = client.post(
        f"/f/{form_id}?lang={lang}",
        data={
            "email": unique_email("thanks"),
            "consent": "newsletter",
            "render_token": render_token(app, form_id),
        },
    )
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    heading, text = EXPECTED[lang]
    [title] = re.findall(r"<h1>(.*?)</h1>", html)
    [shown] = re.findall(r'<p class="lv-intro" role="status">(.*?)</p>', html)
    assert (title, shown) == (heading, text)
    assert not shown.startswith(title)  # no "Thank you" twice
