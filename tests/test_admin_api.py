"""The JSON admin API (issue 11.4, 11.5): personal tokens, leads (cursor pages, filters,
lookup through the blind index, detail, reveal, export, stage change, erase), RFC 9457
errors, the OpenAPI 3.1 document and its reference page, the audit of each look."""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa

from admin import tokens
from admin.models import PersonalToken
from leadvault import audit, clock
from leadvault.models import AuditEntry, Lead
from tests import factories
from tests.factories import uow


def _auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _entries(app, action):
    with uow(app) as s:
        return audit.entries(s, audit.Filters(action=action), limit=200)


def _count(app) -> int:
    with uow(app) as s:
        return s.scalar(sa.select(sa.func.count()).select_from(AuditEntry))


def test_leads_list_pages_by_cursor_and_filters(app, client):
    form_a = factories.form(app, name="A")
    start = clock.now()
    ids = []
    for i in range(5):
        clock.freeze(start + dt.timedelta(minutes=i))
        ids.append(
            factories.lead(
                app,
                form_id=form_a,
                source={"utm_source": "news" if i % 2 else "ads"},
                confirmed=i != 4,
            )
        )
    clock.freeze(start + dt.timedelta(hours=1))
    headers = _auth(factories.personal_token(app, "marketing"))

    first = client.get("/api/v1/leads?limit=2", headers=headers)
    assert first.status_code == 200, first.get_json()
    body = first.get_json()
    assert [row["id"] for row in body["items"]] == [str(ids[4]), str(ids[3])]
    second = client.get(f"/api/v1/leads?limit=2&cursor={body['next_cursor']}", headers=headers)
    third_cursor = second.get_json()["next_cursor"]
    assert [row["id"] for row in second.get_json()["items"]] == [str(ids[2]), str(ids[1])]
    last = client.get(f"/api/v1/leads?limit=2&cursor={third_cursor}", headers=headers).get_json()
    assert [row["id"] for row in last["items"]] == [str(ids[0])]
    assert last["next_cursor"] is None

    news = client.get("/api/v1/leads?utm_source=news", headers=headers).get_json()["items"]
    assert {row["id"] for row in news} == {str(ids[1]), str(ids[3])}
    pending = client.get(
        "/api/v1/leads?purpose=newsletter&purpose_state=pending", headers=headers
    ).get_json()["items"]
    assert [row["id"] for row in pending] == [str(ids[4])]
    assert pending[0]["consents"] == {"newsletter": "pending"}
    new = client.get("/api/v1/leads?stage=new&stage=mql", headers=headers).get_json()
    assert len(new["items"]) == 5, new
    grades = {row["grade"] for row in new["items"]}
    graded = client.get(f"/api/v1/leads?grade={min(grades)}", headers=headers).get_json()
    assert {row["grade"] for row in graded["items"]} == {min(grades)}
    assert not client.get("/api/v1/leads?stage=won", headers=headers).get_json()["items"]
    window = client.get(
        "/api/v1/leads",
        query_string={
            "created_from": (start + dt.timedelta(minutes=1)).isoformat(),
            "created_to": (start + dt.timedelta(minutes=3)).isoformat(),
        },
        headers=headers,
    ).get_json()["items"]
    assert [row["id"] for row in window] == [str(ids[2]), str(ids[1])]
    assert client.get(f"/api/v1/leads?form={form_a}", headers=headers).get_json()["items"]
    assert not client.get("/api/v1/leads?form=nope", headers=headers).get_json()["items"]

    # Listing is pseudonymous: no addresses, no audit entries.
    assert "@" not in first.get_data(as_text=True)
    assert not _entries(app, "lead.revealed")


def test_bad_input_is_a_problem_document(app, client):
    headers = _auth(factories.personal_token(app, "owner"))
    for query in (
        "limit=0",
        "limit=1000",
        "stage=king",
        "score_min=abc",
        "cursor=%%%",
        "suspect=maybe",
    ):
        response = client.get(f"/api/v1/leads?{query}", headers=headers)
        assert response.status_code == 422, query
        assert response.mimetype == "application/problem+json"
        problem = response.get_json()
        assert problem["status"] == 422 and problem["title"] and problem["detail"]
        assert problem["errors"], query
    # A single-valued parameter given twice is refused, not read as one of them.
    twice = client.get("/api/v1/leads?limit=1&limit=50", headers=headers)
    assert twice.status_code == 422
    assert twice.get_json()["errors"] == {"limit": ["Give this parameter once."]}
    unknown = client.get("/api/v1/nothing-here", headers=headers)
    assert unknown.status_code == 404 and unknown.mimetype == "application/problem+json"
    wrong_method = client.put("/api/v1/leads", headers=headers)
    assert wrong_method.status_code == 405 and "GET" in wrong_method.headers["Allow"]
    not_json = client.post("/api/v1/leads/lookup", data="email=x", headers=headers)
    assert not_json.status_code == 415
    no_auth = client.get("/api/v1/leads")
    assert no_auth.status_code == 401 and no_auth.mimetype == "application/problem+json"
    assert no_auth.headers["WWW-Authenticate"].startswith("Bearer")


def test_lookup_detail_reveal_export_each_audited_once(app, client):
    email = factories.unique_email("lookup")
    lead_id = factories.lead(app, email, profile={"first_name": "Ada", "company": "Analytical"})
    headers = _auth(factories.personal_token(app, "privacy"))

    found = client.post("/api/v1/leads/lookup", json={"email": email.upper()}, headers=headers)
    assert found.status_code == 200 and found.get_json() == {"id": str(lead_id)}
    missing = client.post("/api/v1/leads/lookup", json={"email": "x@example.org"}, headers=headers)
    assert missing.status_code == 404

    before = _count(app)
    detail = client.get(f"/api/v1/leads/{lead_id}", headers=headers)
    assert detail.status_code == 200
    body = detail.get_json()
    assert body["fields"] == ["company", "first_name"]
    assert {c["purpose"]: c["status"] for c in body["consents"]} == {"newsletter": "granted"}
    assert [e["event"] for e in body["consent_history"]] == ["requested", "confirmed"]
    assert any(item["kind"] == "submission" for item in body["timeline"])
    text = detail.get_data(as_text=True)
    assert email not in text and "Ada" not in text and "Analytical" not in text
    assert _count(app) == before  # reading without decrypting is not a look at personal data

    revealed = client.post(f"/api/v1/leads/{lead_id}/reveal", headers=headers)
    assert revealed.status_code == 200
    assert revealed.get_json()["email"] == email
    assert revealed.get_json()["profile"] == {"first_name": "Ada", "company": "Analytical"}
    assert revealed.headers["Cache-Control"] == "no-store"
    assert _count(app) == before + 1
    (entry,) = _entries(app, "lead.revealed")
    assert entry.object_id == str(lead_id) and entry.actor.startswith("user:")
    assert audit.detail_of(entry) == {"fields": ["email", "company", "first_name"]}

    exported = client.post(f"/api/v1/leads/{lead_id}/export", headers=headers)
    assert exported.status_code == 200
    assert exported.get_json()["lead"]["email"] == email
    assert _count(app) == before + 2
    assert len(_entries(app, "lead.exported")) == 1

    erased = client.delete(f"/api/v1/leads/{lead_id}", headers=headers)
    assert erased.status_code == 204
    assert _count(app) == before + 3
    assert len(_entries(app, "lead.erased")) == 1
    with uow(app) as s:
        assert s.get(Lead, lead_id) is None
        assert audit.verify(s).ok
    assert client.get(f"/api/v1/leads/{lead_id}", headers=headers).status_code == 404


def test_stage_change_with_reason(app, client):
    lead_id = factories.lead(app)
    headers = _auth(factories.personal_token(app, "marketing"))
    url = f"/api/v1/leads/{lead_id}/stage"
    no_reason = client.post(url, json={"stage": "disqualified", "reason": ""}, headers=headers)
    assert no_reason.status_code == 422 and "reason" in no_reason.get_json()["errors"]
    changed = client.post(
        url, json={"stage": "disqualified", "reason": "competitor"}, headers=headers
    )
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json() == {"id": str(lead_id), "from": "new", "to": "disqualified"}
    again = client.post(url, json={"stage": "won", "reason": "oops"}, headers=headers)
    assert again.status_code == 409
    (entry,) = _entries(app, "lead.stage_changed")
    # Free text stays in the stage history (erased with the lead), not in the audit trail.
    assert audit.detail_of(entry) == {"from": "new", "to": "disqualified", "reason": "other"}
    detail = client.get(f"/api/v1/leads/{lead_id}", headers=headers).get_json()
    assert detail["stage"] == "disqualified"
    assert [i["to"] for i in detail["timeline"] if i["kind"] == "stage"] == ["disqualified"]


def test_tokens_are_scoped_expiring_and_revocable(app, client):
    lead_id = factories.lead(app)
    narrow = factories.personal_token(app, "marketing", scopes=["leads:read"])
    assert client.get("/api/v1/leads", headers=_auth(narrow)).status_code == 200
    # Beyond its scopes (though the role could): 403.
    assert client.post(f"/api/v1/leads/{lead_id}/reveal", headers=_auth(narrow)).status_code == 403
    me = client.get("/api/v1/me", headers=_auth(narrow)).get_json()
    assert me["permissions"] == ["leads:read", "leads:read-assigned"] or me["permissions"] == [
        "leads:read"
    ]

    # Created in the console (signed in, CSRF), listed, revoked.
    console, user_id = factories.signed_in_client(app, "viewer")
    csrf = factories.csrf_token(console, "/admin/account")
    refused = console.post(
        "/api/v1/tokens", json={"name": "x", "scopes": ["leads:read"], "days": 5}
    )
    assert refused.status_code == 400  # no CSRF token
    beyond = console.post(
        "/api/v1/tokens",
        json={"name": "x", "scopes": ["leads:read"], "days": 5},
        headers={"X-CSRFToken": csrf},
    )
    assert beyond.status_code == 422  # a viewer cannot grant what it has not
    created = console.post(
        "/api/v1/tokens",
        json={"name": "reports", "scopes": ["reports:read"], "days": 5},
        headers={"X-CSRFToken": csrf},
    )
    assert created.status_code == 201, created.get_json()
    secret = created.get_json()["secret"]
    assert secret.startswith("lvp_")
    with uow(app) as s:
        stored = s.scalars(sa.select(PersonalToken).where(PersonalToken.user_id == user_id)).one()
        assert secret not in stored.token_hash
    assert client.get("/api/v1/me", headers=_auth(secret)).get_json()["via"] == "token"
    # A token cannot make tokens.
    assert (
        client.post(
            "/api/v1/tokens",
            json={"name": "y", "scopes": ["reports:read"], "days": 5},
            headers=_auth(secret),
        ).status_code
        == 403
    )
    listed = console.get("/api/v1/tokens").get_json()
    assert [t["name"] for t in listed] == ["reports"] and "secret" not in listed[0]
    token_id = listed[0]["id"]
    assert (
        console.delete(f"/api/v1/tokens/{token_id}", headers={"X-CSRFToken": csrf}).status_code
        == 204
    )
    assert client.get("/api/v1/me", headers=_auth(secret)).status_code == 401

    # Expiry.
    expiring = factories.personal_token(app, "viewer", scopes=["reports:read"])
    clock.freeze(clock.now() + dt.timedelta(days=31))
    assert client.get("/api/v1/me", headers=_auth(expiring)).status_code == 401


def test_disabled_account_or_changed_role_takes_effect_at_once(app, client):
    from admin import accounts
    from admin.models import User

    secret = factories.personal_token(app, "marketing")
    headers = _auth(secret)
    assert client.get("/api/v1/leads", headers=headers).status_code == 200
    with uow(app) as s:
        token = s.scalars(sa.select(PersonalToken)).one()
        user = s.get(User, token.user_id)
        factories_owner = accounts.create(s, factories.unique_email(), "owner", actor="system")
        assert factories_owner
        accounts.change_role(s, user, "viewer", actor="system")
    assert client.get("/api/v1/leads", headers=headers).status_code == 403
    with uow(app) as s:
        accounts.disable(s, s.get(User, token.user_id), actor="system")
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    assert tokens.PREFIX == "lvp_"


def test_openapi_document_and_reference_page(app, client):
    spec = client.get("/api/v1/openapi.json")
    assert spec.status_code == 200
    doc = spec.get_json()
    assert doc["openapi"] == "3.1.0"
    assert set(doc["components"]["securitySchemes"]) == {"token", "console"}
    assert "Problem" in doc["components"]["schemas"]
    reveal = doc["paths"]["/leads/{lead_id}/reveal"]["post"]
    assert reveal["x-permission"] == "leads:reveal-assigned"
    assert "application/problem+json" in reveal["responses"]["403"]["content"]
    listing = doc["paths"]["/leads"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert {"stage", "grade", "form", "utm_source", "purpose", "purpose_state", "suspect"} <= names
    assert {"score_min", "score_max", "created_from", "created_to", "cursor", "limit"} <= names

    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "POST /leads/{lead_id}/reveal" in html
    # Rendered on the server: no inline script, and none but the console's own file.
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert all(re.search(r'\bsrc="/console/static/', tag) for tag in scripts), scripts
    assert "https://" not in html.split("</head>")[0]  # no CDN


def test_reports_are_aggregates_for_a_viewer(app, client):
    email = factories.unique_email("report")
    factories.lead(app, email, source={"utm_source": "newsletter"})
    headers = _auth(factories.personal_token(app, "viewer"))
    funnel = client.get("/api/v1/reports/funnel?days=30", headers=headers)
    assert funnel.status_code == 200, funnel.get_json()
    steps = funnel.get_json()["steps"]
    assert [s["stage"] for s in steps] == ["new", "mql", "sal", "sql", "won"]
    assert steps[0]["reached"] >= 1
    sources = client.get("/api/v1/reports/sources?by=utm_source", headers=headers)
    assert sources.status_code == 200
    assert any(row["key"] == "newsletter" for row in sources.get_json())
    bots = client.get("/api/v1/reports/bots?days=7", headers=headers)
    assert bots.status_code == 200 and len(bots.get_json()) >= 1
    assert client.get("/api/v1/reports/sources?by=nonsense", headers=headers).status_code == 422
    assert client.get("/api/v1/reports/funnel?days=0", headers=headers).status_code == 422
    for response in (funnel, sources, bots):
        assert email not in response.get_data(as_text=True)


def test_forms_list_archive_and_origins(app, client):
    form_id = factories.form(app, name="Spring guide")
    marketing = _auth(factories.personal_token(app, "marketing"))
    listed = client.get("/api/v1/forms", headers=marketing).get_json()
    assert form_id in [f["public_id"] for f in listed]
    bad = client.put(
        f"/api/v1/forms/{form_id}/origins",
        json={"allowed_origins": ["not an origin"]},
        headers=marketing,
    )
    assert bad.status_code == 422 and "allowed_origins" in bad.get_json()["errors"]
    good = client.put(
        f"/api/v1/forms/{form_id}/origins",
        json={"allowed_origins": ["https://WWW.Example.com:443/", "https://shop.example.com"]},
        headers=marketing,
    )
    assert good.status_code == 200
    assert good.get_json()["allowed_origins"] == [
        "https://shop.example.com",
        "https://www.example.com",
    ]
    viewer = _auth(factories.personal_token(app, "viewer"))
    assert client.post(f"/api/v1/forms/{form_id}/archive", headers=viewer).status_code == 403
    archived = client.post(f"/api/v1/forms/{form_id}/archive", headers=marketing)
    assert archived.status_code == 200 and archived.get_json()["active"] is False
    assert client.get(f"/api/v1/forms/{form_id}", headers=viewer).get_json()["active"] is False
    assert client.get(f"/f/{form_id}").status_code == 404  # takes no more submissions
    assert [e.object_id for e in _entries(app, "form.archived")] == [form_id]
    assert client.get("/api/v1/forms/nope", headers=viewer).status_code == 404
