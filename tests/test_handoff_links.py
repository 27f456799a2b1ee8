"""A handoff link that is not one answers as every signed link does: 400 "This link is
not valid" when broken, forged or of another kind; 410 when it expired or its lead's
data was erased since (nothing left to decide)."""

from __future__ import annotations

import uuid

import pytest

from leadvault.db import vault_of
from scoring import handoff
from tests.factories import tampered, uow
from tests.hostile import contact_form, setup_sales, stored_lead

PROFILE = {"first_name": "Ottoline", "country": "DE", "company_size": "250-999"}


def _token(app, purpose=handoff.HANDOFF_TOKEN, payload=None):
    with uow(app) as s:
        return vault_of(s).sign(purpose, payload or {"h": uuid.uuid4().hex})


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("GET", "/accept"), ("POST", "/accept"), ("POST", "/reject"), ("POST", "/sql")],
)
def test_broken_forged_or_foreign_tokens_are_not_valid_links(app, method, suffix):
    app.config["WTF_CSRF_ENABLED"] = False
    client = app.test_client()
    good = _token(app)
    for token in (
        "garbage",
        tampered(good),
        _token(app, "unsubscribe"),  # signed by us for another purpose
        _token(app, payload={"h": "not-an-id"}),
    ):
        reply = client.open(f"/h/{token}{suffix}", method=method)
        assert reply.status_code == 400, (token, reply.status_code)
        assert "This link is not valid" in reply.get_data(as_text=True)
        assert reply.headers["Cache-Control"] == "no-store"


def test_expired_links_and_erased_leads_are_gone(app, monkeypatch):
    client = app.test_client()
    erased = _token(app)  # a well-made token whose handoff no longer exists
    reply = client.get(f"/h/{erased}")
    assert reply.status_code == 410 and "This link has expired" in reply.get_data(as_text=True)
    assert reply.headers["Cache-Control"] == "no-store"
    monkeypatch.setattr(handoff, "TOKEN_MAX_AGE", -1)  # every token is older than that
    expired = client.get(f"/h/{erased}/accept")
    assert expired.status_code == 410 and "90 days" in expired.get_data(as_text=True)


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
def test_an_unknown_action_of_a_good_link_is_no_page(app, method):
    """Only accept and reject have a page (GET); an action the page does not have is
    404 for every method, never the overview under another address."""
    app.config["WTF_CSRF_ENABLED"] = False
    client = app.test_client()
    setup_sales(app)
    lead = stored_lead(app, contact_form(app), PROFILE, {"page_url": "https://www.example.com/"})
    with uow(app) as s:
        offered = handoff.open_handoff(s, lead.lead_id)
        assert offered is not None
        page = "/" + handoff.handoff_url(s, offered).split("/", 3)[3]
    for action in ("nothing", "ACCEPT", "accept.html", "bant" if method != "POST" else "x"):
        reply = client.open(f"{page}/{action}", method=method)
        assert reply.status_code == 404, (action, reply.status_code)
        assert reply.headers["Cache-Control"] == "no-store"
        if method != "HEAD":
            text = reply.get_data(as_text=True)
            assert "This link is not valid" in text and "Ottoline" not in text
    for action in ("", "/accept", "/reject"):  # the real pages still show
        assert client.open(page + action, method="GET").status_code == 200
