"""Mails rendered once per worker batch are the mails rendered one by one (issue 13)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from consent import service as consent_service
from consent.models import ConsentText
from leadvault import batch, batch_mail, branding
from leadvault.app import runtime
from leadvault.db import mail_context

# What leads type: markup, quotes, links a mail client would make live, umlauts, the
# characters css-inline re-serialises (&, non-breaking space), a placeholder look-alike.
NAMES = [
    "Ada",
    "Jürgen",
    "<b>Eve</b> & 'Mallory' \"M\"",
    "Visit https://evil.example or www.evil.example",
    "Booking.com",
    "J.R.R.",
    "a\u00a0b &amp; c",
    "lvslot0123456789abcdef",
    None,
    "",
]
URLS = [
    "https://leads.example/c/abc.DEF-123_x",
    "https://leads.example/c/a&b=<c>\"d'",
]


def _context(session: Any, lang: str) -> tuple[dict[str, Any], tuple[Any, ...]]:
    texts = list(
        session.scalars(
            sa.select(ConsentText).where(ConsentText.language == lang).order_by(ConsentText.id)
        )
    )[:2]
    purposes = sorted({text.purpose for text in texts})
    context = mail_context(
        session,
        lang,
        purposes=[consent_service.purpose_label(p, lang) for p in purposes],
        texts=texts,
        max_age_days=7,
    )
    return context, (tuple(purposes), tuple(text.id for text in texts))


@pytest.mark.parametrize("lang", ["en", "de"])
def test_batched_opt_in_mails_equal_mails_rendered_one_by_one(app: Any, lang: str) -> None:
    with app.app_context(), runtime(app).session_factory() as session:
        context, shared = _context(session, lang)
        expected = [
            branding.mail_parts(
                "consent/mail/optin", {**context, "first_name": name, "confirm_url": url}
            )
            for name in NAMES
            for url in URLS
        ]
        batch.begin(session)
        try:
            got = [
                batch_mail.mail_parts(
                    session,
                    "consent/mail/optin",
                    context,
                    shared=shared,
                    lead_values={"first_name": name, "confirm_url": url},
                )
                for name in NAMES
                for url in URLS
            ]
            # Rendered once per set of values present (with and without a name).
            cached = [key for key in batch.active(session).cache if "leadvault.mail" in key]
        finally:
            batch.end(session)
    assert len(cached) == 2
    for want, have in zip(expected, got, strict=True):
        assert have == want
    # The values really are in it (the comparison is not between two empty mails).
    assert "Jürgen" in got[2]["text"] and "Jürgen" in got[2]["html"]
    assert "&lt;b&gt;Eve&lt;/b&gt;" in got[4]["html"]
    assert "https[:]//evil[.]example" in got[6]["text"]
    assert "lvslot" not in got[0]["html"] and "lvslot" not in got[-1]["text"]


def test_outside_a_batch_the_mail_is_rendered_as_before(app: Any) -> None:
    with app.app_context(), runtime(app).session_factory() as session:
        context, shared = _context(session, "en")
        values = {"first_name": "Ada", "confirm_url": URLS[0]}
        got = batch_mail.mail_parts(
            session, "consent/mail/optin", context, shared=shared, lead_values=values
        )
        assert got == branding.mail_parts("consent/mail/optin", {**context, **values})


def test_the_opt_in_mail_is_css_inlined_once_per_batch(app: Any, monkeypatch: Any) -> None:
    """Each mail's values are put into HTML inlined once (not inlined per mail), and the
    result is what inlining each mail gives (the test above)."""
    inlined: list[str] = []
    real = branding.inline_css
    monkeypatch.setattr(branding, "inline_css", lambda html: inlined.append(html) or real(html))
    with app.app_context(), runtime(app).session_factory() as session:
        context, shared = _context(session, "en")
        batch.begin(session)
        try:
            for name in NAMES:
                batch_mail.mail_parts(
                    session,
                    "consent/mail/optin",
                    context,
                    shared=shared,
                    lead_values={"first_name": name, "confirm_url": URLS[1]},
                )
        finally:
            batch.end(session)
    # Per set of values present (with a name, without): once, and once for the probe.
    assert len(inlined) == 4


def test_a_lasting_render_serves_the_later_batches_of_its_app_and_settings(
    app: Any, monkeypatch: Any
) -> None:
    """``lasting=True`` (the opt-in mail): the next batch reuses the render, the mails
    stay the ones rendered one by one; a new settings object renders again."""
    import dataclasses

    renders: list[str] = []
    real = batch_mail._render
    monkeypatch.setattr(batch_mail, "_render", lambda *a: renders.append(a[0]) or real(*a))
    app.extensions.pop("leadvault.batch_mail", None)
    with app.app_context(), runtime(app).session_factory() as session:
        context, shared = _context(session, "en")
        expected = [
            branding.mail_parts(
                "consent/mail/optin", {**context, "first_name": name, "confirm_url": URLS[1]}
            )
            for name in NAMES
        ]

        def one_batch() -> list[dict[str, str]]:
            batch.begin(session)
            try:
                return [
                    batch_mail.mail_parts(
                        session,
                        "consent/mail/optin",
                        context,
                        shared=shared,
                        lead_values={"first_name": name, "confirm_url": URLS[1]},
                        lasting=True,
                    )
                    for name in NAMES
                ]
            finally:
                batch.end(session)

        assert one_batch() == expected
        assert one_batch() == expected
        assert len(renders) == 2  # with a name and without, in the first batch only
        session.info["settings"] = dataclasses.replace(session.info["settings"])
        assert one_batch() == expected
        assert len(renders) == 4


def test_a_mails_json_is_its_fields():
    """The outbox seals ``MailContent.to_json()`` (built directly): every field, as
    ``dataclasses.asdict`` gives them, and back again."""
    import dataclasses

    from leadvault.mail import MailContent

    content = MailContent(
        to="ada@example.com",
        subject="Hallo",
        text="Text",
        html="<p>Text</p>",
        headers={"List-Unsubscribe": "<https://example.com/u>"},
        language="de",
    )
    assert content.to_json() == dataclasses.asdict(content)
    assert content.to_json()["headers"] is not content.headers
    assert MailContent.from_json(content.to_json()) == content
