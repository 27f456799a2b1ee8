"""The console's pages through the test client, signed in through the real sign-in
form as each role: what each role sees, audited reveal, stage changes, bad input."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from leadvault import audit
from leadvault.audit import Action
from leadvault.models import AuditEntry
from tests import factories
from tests.factories import uow


def text(response: Any) -> str:
    return response.get_data(as_text=True)


def csrf(client: Any, path: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', text(client.get(path)))
    assert found, path
    return found.group(1)


def audit_count(app: Any, action: str) -> int:
    with uow(app) as s:
        return s.scalar(
            sa.select(sa.func.count()).select_from(AuditEntry).where(AuditEntry.action == action)
        )


def one_h1(html: str) -> None:
    assert len(re.findall(r"<h1[ >]", html)) == 1, "every page has exactly one h1"


def test_signed_out_visitors_are_sent_to_sign_in(client):
    for path in ("/console/", "/console/dashboard", "/console/leads"):
        response = client.get(path)
        assert response.status_code == 302
        assert "/admin/sign-in" in response.headers["Location"]


def test_owner_lands_on_the_dashboard_with_charts_and_links(app):
    lead_id = factories.lead(app)
    client, _ = factories.signed_in_client(app, "owner")
    home = client.get("/console/")
    assert home.status_code == 302 and home.headers["Location"].endswith("/console/dashboard")
    page = client.get("/console/dashboard")
    html = text(page)
    assert page.status_code == 200
    one_h1(html)
    assert html.count('role="img"') >= 2  # per day, bots
    assert 'role="group"' in html  # the funnel, whose bars are links
    assert "<title" in html and "<desc" in html
    assert 'href="/console/leads?since=' in html  # numbers link into the list
    assert page.headers["Cache-Control"] == "no-store"
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert str(lead_id) not in html
    assert client.get("/console/dashboard?days=90").status_code == 200


def test_dashboard_escapes_what_owners_typed(app):
    hostile = '<script>alert(1)</script>"&'
    form_id = factories.form(app, name=hostile)
    factories.lead(app, form_id=form_id, confirmed=False)
    client, _ = factories.signed_in_client(app, "owner")
    html = text(client.get("/console/dashboard"))
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_dashboard_rejects_other_periods_with_a_message(app):
    client, _ = factories.signed_in_client(app, "marketing")
    response = client.get("/console/dashboard?days=7")
    assert response.status_code == 400
    assert "30 or 90 days" in text(response)


def test_viewer_sees_charts_but_no_leads_and_no_links(app):
    lead_id = factories.lead(app, profile={"first_name": "Zelda"})
    client, _ = factories.signed_in_client(app, "viewer")
    html = text(client.get("/console/dashboard"))
    assert 'role="img"' in html
    assert "/console/leads" not in html  # neither navigation nor links into the list
    assert "Zelda" not in html
    assert client.get("/console/leads").status_code == 403
    assert client.get(f"/console/leads/{lead_id}").status_code == 403
    assert client.post(f"/console/leads/{lead_id}/reveal").status_code in {400, 403}


def test_sales_sees_only_the_leads_handed_to_them(app):
    from scoring.models import Handoff, HandoffStatus

    mine, other = factories.lead(app), factories.lead(app)
    client, user_id = factories.signed_in_client(app, "sales")
    with uow(app) as s:
        from admin.models import User

        person = s.get(User, user_id).salesperson_id
        s.add(
            Handoff(
                id=uuid.uuid4(),
                lead_id=mine,
                person_id=person,
                routing_rule="test",
                status=HandoffStatus.OFFERED,
            )
        )
    home = client.get("/console/")
    assert home.headers["Location"].endswith("/console/leads")
    assert client.get("/console/dashboard").status_code == 403
    html = text(client.get("/console/leads"))
    assert mine.hex[:8] in html
    assert other.hex[:8] not in html
    assert client.get(f"/console/leads/{mine}").status_code == 200
    assert client.get(f"/console/leads/{other}").status_code == 404


def test_lead_list_filters_sorts_and_pages(app):
    from admin import leads as lead_service

    footer = factories.form(app, name="Footer")
    sidebar = factories.form(app, name="Sidebar")
    footers = [factories.lead(app, form_id=footer, confirmed=False) for _ in range(3)]
    side = factories.lead(app, form_id=sidebar, confirmed=False, source={"utm_source": "ads"})
    client, _ = factories.signed_in_client(app, "marketing")
    html = text(client.get(f"/console/leads?form={footer}"))
    one_h1(html)
    assert all(lead.hex[:8] in html for lead in footers)
    assert side.hex[:8] not in html
    only_ads = text(client.get("/console/leads?utm_source=ads"))
    assert side.hex[:8] in only_ads and footers[0].hex[:8] not in only_ads
    assert side.hex[:8] in text(client.get("/console/leads?sort=score&stage=new"))
    # Paging: one page at a time, the next page continues where the first ended.
    for sort in ("created", "score"):
        with uow(app) as s:
            everyone = lead_service.Filters()
            first, cursor = lead_service.list_leads(s, everyone, sort=sort, limit=3)
            assert len(first) == 3 and cursor
            second, end = lead_service.list_leads(s, everyone, sort=sort, cursor=cursor, limit=3)
            # A cursor continues only the order it was made for.
            other = "score" if sort == "created" else "created"
            with pytest.raises(lead_service.BadCursor):
                lead_service.list_leads(s, everyone, sort=other, cursor=cursor)
        assert end is None
        seen = [r.id for r in first + second]
        assert sorted(seen) == sorted([*footers, side])
        if sort == "created":
            assert seen == [side, *reversed(footers)]  # newest first
    link = text(client.get(f"/console/leads?form={footer}"))
    assert "Next page" not in link  # three rows fit one page


@pytest.mark.parametrize(
    "query",
    [
        "stage=bogus",
        "grade=Z",
        "sort=email",
        "score_min=lots",
        "since=yesterday",
        "cursor=garbage",
        "suspect=maybe",
        f"utm_source={'x' * 200}",
    ],
)
def test_lead_list_refuses_bad_filters_with_a_message(app, query):
    client, _ = factories.signed_in_client(app, "marketing")
    response = client.get(f"/console/leads?{query}")
    assert response.status_code == 400
    assert "<h1" in text(response) or "error" in text(response)
    assert "Traceback" not in text(response)


def test_find_by_email_posts_and_never_puts_the_address_in_a_url(app):
    email = factories.unique_email("findme")
    lead_id = factories.lead(app, email=email)
    client, _ = factories.signed_in_client(app, "marketing")
    token = csrf(client, "/console/leads")
    found = client.post("/console/leads/find", data={"email": email, "csrf_token": token})
    assert found.status_code == 302
    assert found.headers["Location"].endswith(f"/console/leads/{lead_id}")
    assert email not in found.headers["Location"]
    missing = client.post(
        "/console/leads/find", data={"email": "nobody@example.org", "csrf_token": token}
    )
    assert missing.status_code == 404
    assert "No lead with this address" in text(missing)


def test_reveal_is_one_audited_request_and_shows_the_data(app):
    email = factories.unique_email("reveal")
    lead_id = factories.lead(app, email=email, profile={"first_name": "Ada"})
    client, user_id = factories.signed_in_client(app, "marketing")
    page = text(client.get(f"/console/leads/{lead_id}"))
    one_h1(page)
    assert email not in page and "Ada" not in page
    assert "Show personal data" in page
    before = audit_count(app, Action.LEAD_REVEALED)
    token = csrf(client, f"/console/leads/{lead_id}")
    shown = client.post(f"/console/leads/{lead_id}/reveal", data={"csrf_token": token})
    assert shown.status_code == 200
    assert email in text(shown) and "Ada" in text(shown)
    assert shown.headers["Cache-Control"] == "no-store"
    assert audit_count(app, Action.LEAD_REVEALED) == before + 1
    with uow(app) as s:
        entry = s.scalars(
            sa.select(AuditEntry).where(AuditEntry.action == Action.LEAD_REVEALED)
        ).all()[-1]
        assert entry.object_id == str(lead_id)
        assert entry.actor == f"user:{user_id}"
        # The same entry as the API's reveal.
        assert audit.detail_of(entry) == {"fields": ["email", "first_name"]}
    # Without the CSRF token nothing is shown and nothing recorded.
    assert client.post(f"/console/leads/{lead_id}/reveal").status_code == 400
    assert audit_count(app, Action.LEAD_REVEALED) == before + 1


def test_stage_change_with_a_reason_moves_the_dashboard(app):
    lead_id = factories.lead(app)
    client, _ = factories.signed_in_client(app, "owner")

    def mql_tile() -> str:
        html = text(client.get("/console/dashboard"))
        found = re.search(r'tile-label">MQL</span> <span class="tile-value">(.*?)</span>', html)
        assert found
        return re.sub(r"<[^>]+>", "", found.group(1))

    assert mql_tile() == "0"
    token = csrf(client, f"/console/leads/{lead_id}")
    refused = client.post(
        f"/console/leads/{lead_id}/stage", data={"to": "mql", "csrf_token": token}
    )
    assert refused.status_code == 422
    assert "Please choose a reason" in text(refused)
    wrong = client.post(
        f"/console/leads/{lead_id}/stage",
        data={"to": "won", "reason": "deal_won", "csrf_token": token},
    )
    assert wrong.status_code == 422
    before = audit_count(app, Action.LEAD_STAGE_CHANGED)
    moved = client.post(
        f"/console/leads/{lead_id}/stage",
        data={"to": "mql", "reason": "qualified", "csrf_token": token},
    )
    assert moved.status_code == 302
    assert audit_count(app, Action.LEAD_STAGE_CHANGED) == before + 1
    with uow(app) as s:
        entry = s.scalars(
            sa.select(AuditEntry).where(AuditEntry.action == Action.LEAD_STAGE_CHANGED)
        ).all()[-1]
        assert audit.detail_of(entry) == {"from": "new", "to": "mql", "reason": "qualified"}
    assert mql_tile() == "1"
    page = text(client.get(f"/console/leads/{lead_id}"))
    assert "Stage New → MQL" in page
    assert "Given" in page  # the newsletter consent, in words
    german = text(client.get(f"/console/leads/{lead_id}?lang=de"))
    assert "Phase Neu → MQL" in german and "Erteilt" in german


def test_console_speaks_german_after_choosing_it(app):
    client, _ = factories.signed_in_client(app, "owner")
    token = csrf(client, "/console/dashboard")
    chosen = client.post(
        "/console/language",
        data={"lang": "de", "next": "/console/dashboard", "csrf_token": token},
    )
    assert chosen.status_code == 302 and chosen.headers["Location"] == "/console/dashboard"
    html = text(client.get("/console/dashboard"))
    assert '<html lang="de">' in html
    assert "Übersicht" in html
    away = client.post(
        "/console/language",
        data={"lang": "de", "next": "https://evil.example/", "csrf_token": token},
    )
    assert away.headers["Location"] == "/console/"
    assert (
        client.post("/console/language", data={"lang": "fr", "csrf_token": token}).status_code
        == 400
    )


def test_privacy_sees_verification_audit_trail_and_a_printable_proof(app):
    lead_id = factories.lead(app)
    client, _ = factories.signed_in_client(app, "privacy")
    home = client.get("/console/")
    assert home.headers["Location"].endswith("/console/leads")  # no reports for privacy
    page = text(client.get("/console/privacy"))
    one_h1(page)
    assert "auth.login" in page  # the sign-in is in the trail
    verified = text(client.get("/console/privacy?verify=1"))
    assert verified.count("intact") == 2
    only_logins = text(client.get("/console/privacy?action=lead.revealed"))
    assert "auth.login</td>" not in only_logins
    assert client.get("/console/privacy?before=x").status_code == 400
    proof = client.get(f"/console/leads/{lead_id}/proof")
    html = text(proof)
    assert proof.status_code == 200
    one_h1(html)
    assert "confirmed" in html and "requested" in html
    assert "Consent asked for <code>requested</code>" in html  # named, with the ledger's code
    assert "example.org" not in html  # no personal data on the proof
    marketing, _ = factories.signed_in_client(app, "marketing")
    assert marketing.get("/console/privacy").status_code == 403
    assert marketing.get(f"/console/leads/{lead_id}/proof").status_code == 403
