"""The admin API's exports and imports: streamed files, problem+json errors, roles,
CSRF for console sessions, one audit entry each."""

from __future__ import annotations

import csv
import io

import openpyxl
import sqlalchemy as sa

from leadvault import audit, leads
from leadvault.models import Lead
from tests import factories
from tests.factories import uow
from tests.test_imports import HEADER, PROOF_TEXT, csv_bytes


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_export_streams_csv_and_xlsx_for_roles_that_may_export(app):
    kept = factories.lead(
        app, "anna@example.org", profile={"first_name": "Änna"}, purposes=("newsletter",)
    )
    factories.lead(app, "bob@example.org", purposes=("whitepaper",))
    client = app.test_client()
    token = factories.personal_token(app, "marketing")
    response = client.post(
        "/api/v1/exports",
        json={"columns": "id,email,first_name,consent.newsletter", "purpose": "newsletter"},
        headers=bearer(token),
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="leads.csv"'
    assert response.headers["Cache-Control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert rows == [
        {
            "id": str(kept),
            "email": "anna@example.org",
            "first_name": "Änna",
            "consent.newsletter": "granted",
        }
    ]
    book = client.post(
        "/api/v1/exports", json={"format": "xlsx", "columns": "id,email"}, headers=bearer(token)
    )
    assert book.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(book.get_data()))["Leads"]
    assert sheet.max_row == 3
    with uow(app) as s:
        trail = list(reversed(audit.entries(s, audit.Filters(action="leads.exported"))))
    details = [audit.detail_of(e) for e in trail]
    assert [(d["format"], d["rows"], d["filter"]) for d in details] == [
        ("csv", 1, "newsletter granted"),
        ("xlsx", 2, "none"),
    ]
    assert all(e.actor.startswith("user:") for e in trail)


def test_an_export_left_unread_is_closed_before_the_next_request(app):
    """The test client reads every response to its end (tests/conftest.BufferedClient):
    an export a test does not read is over, audited, before the test goes on."""
    factories.lead(app, "cleo@example.org", purposes=("newsletter",))
    client = app.test_client()
    token = factories.personal_token(app, "marketing")
    for _ in range(2):
        unread = client.post("/api/v1/exports", json={"columns": "id"}, headers=bearer(token))
        assert unread.status_code == 200
    factories.lead(app, "dora@example.org", purposes=("newsletter",))
    with uow(app) as s:
        trail = audit.entries(s, audit.Filters(action="leads.exported"))
        assert [audit.detail_of(e)["rows"] for e in trail] == [1, 1]
        assert all("broken off" not in audit.detail_of(e)["filter"] for e in trail)
        assert s.scalar(sa.select(sa.func.count()).select_from(Lead)) == 2


def test_export_errors_are_problems(app):
    client = app.test_client()
    assert client.post("/api/v1/exports", json={}).status_code == 401
    viewer = factories.personal_token(app, "viewer")
    denied = client.post("/api/v1/exports", json={}, headers=bearer(viewer))
    assert denied.status_code == 403
    assert denied.headers["Content-Type"] == "application/problem+json"
    token = factories.personal_token(app, "privacy")
    bad = client.post("/api/v1/exports", json={"columns": "email,shoe_size"}, headers=bearer(token))
    assert bad.status_code == 422
    assert "unknown column 'shoe_size'" in bad.get_json()["detail"]
    wrong = client.post(
        "/api/v1/exports",
        json={"format": "pdf", "created_from": "yesterday"},
        headers=bearer(token),
    )
    assert wrong.status_code == 422
    assert set(wrong.get_json()["errors"]) == {"format", "created_from"}
    # Refused in the words and shape of every other operation (views.Refusal).
    other = client.post("/api/v1/tokens", json={"name": ""}, headers=bearer(token))
    assert other.status_code == 422
    assert wrong.get_json()["detail"] == other.get_json()["detail"]
    not_an_object = client.post("/api/v1/exports", json=["csv"], headers=bearer(token))
    assert not_an_object.status_code == 400
    assert not_an_object.mimetype == "application/problem+json"
    assert "errors" not in not_an_object.get_json()
    # A console session (cookie) needs the CSRF token: a foreign page cannot post for it.
    console, _user = factories.signed_in_client(app, "marketing")
    assert console.post("/api/v1/exports", data={"format": "csv"}).status_code == 400
    with uow(app) as s:
        assert audit.entries(s, audit.Filters(action="leads.exported")) == []


def test_import_upload_dry_run_then_real(app):
    data = csv_bytes(
        [
            HEADER,
            ["ina@example.org", "Ina", "", "", "", "2021-04-01T08:00:00Z", "fair", PROOF_TEXT],
            ["broken", "", "", "", "", "", "", ""],
        ]
    )
    client = app.test_client()
    token = factories.personal_token(app, "marketing")
    dry = client.post(
        "/api/v1/imports?dry_run=true&purpose=newsletter",
        data=data,
        content_type="text/csv",
        headers=bearer(token),
    )
    assert dry.status_code == 200, dry.get_data(as_text=True)
    body = dry.get_json()
    assert (body["dry_run"], body["created"], body["refused"]) == (True, 1, 1)
    assert [(o["line"], o["outcome"]) for o in body["outcomes"]] == [(2, "created"), (3, "refused")]
    assert "ina@example.org" not in dry.get_data(as_text=True)
    with uow(app) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Lead)) == 0

    real = client.post(
        "/api/v1/imports",
        data={"file": (io.BytesIO(data), "contacts.csv")},
        headers=bearer(token),
    )
    assert real.status_code == 200, real.get_data(as_text=True)
    body = real.get_json()
    assert (body["created"], body["consent_imported"]) == (1, 1)
    assert [o["line"] for o in body["outcomes"]] == [3]
    with uow(app) as s:
        assert leads.find_by_email(s, "ina@example.org") is not None
        actions = [e.action for e in audit.entries(s, audit.Filters(action="leads.imported"))]
    assert actions == ["leads.imported", "leads.imported"]

    bad = client.post(
        "/api/v1/imports?map=nonsense", data=data, content_type="text/csv", headers=bearer(token)
    )
    assert bad.status_code == 422 and "COLUMN=FIELD" in str(bad.get_json()["errors"])
    empty = client.post("/api/v1/imports", data=b"", headers=bearer(token))
    assert empty.status_code == 400
    privacy = factories.personal_token(app, "privacy")  # may export, may not write leads
    assert client.post("/api/v1/imports", data=data, headers=bearer(privacy)).status_code == 403


def test_a_console_session_uploads_past_the_apps_body_limit(app):
    """The import's own limit (20 MiB) applies before the CSRF check reads the form."""
    console, _user_id = factories.signed_in_client(app, "marketing")
    csrf = factories.csrf_token(console, "/admin/account")
    notes = "n" * 70_000  # more than LEADVAULT_MAX_BODY_BYTES (64 KiB)
    data = csv_bytes([[*HEADER, "notes"], ["ina@example.org", *[""] * (len(HEADER) - 1), notes]])
    upload = {"file": (io.BytesIO(data), "contacts.csv")}
    without = console.post("/api/v1/imports?dry_run=true", data=upload)
    assert without.status_code == 400  # no CSRF token
    upload = {"file": (io.BytesIO(data), "contacts.csv")}
    dry = console.post("/api/v1/imports?dry_run=true", data=upload, headers={"X-CSRFToken": csrf})
    assert dry.status_code == 200, dry.get_data(as_text=True)
    assert dry.get_json()["lines"] == 1


def test_webhook_endpoints_through_the_api(make_app):
    from tests.test_webhooks import LOOPBACK

    app = make_app(webhook_allow_networks=LOOPBACK)
    client = app.test_client()
    owner = bearer(factories.personal_token(app, "owner"))
    marketing = bearer(factories.personal_token(app, "marketing"))
    url = "http://127.0.0.1:9/hooks/secret-capability"
    assert client.get("/api/v1/webhooks", headers=marketing).status_code == 403
    refused = client.post("/api/v1/webhooks", json={"url": "http://10.0.0.1/x"}, headers=owner)
    assert refused.status_code == 422  # the SSRF guard: a private address
    added = client.post(
        "/api/v1/webhooks",
        json={"url": url, "events": ["lead.erased"], "description": "CRM"},
        headers=owner,
    )
    assert added.status_code == 201, added.get_data(as_text=True)
    body = added.get_json()
    assert body["secret"].startswith("whsec_") and body["events"] == ["lead.erased"]
    endpoint_id = body["id"]
    listed = client.get("/api/v1/webhooks", headers=owner)
    assert listed.status_code == 200
    assert [(e["id"], e["host"], e["status"]) for e in listed.get_json()] == [
        (endpoint_id, "http://127.0.0.1:9", "active")
    ]
    assert "secret-capability" not in listed.get_data(as_text=True)
    base = f"/api/v1/webhooks/{endpoint_id}"
    assert client.post(f"{base}/disable", headers=owner).get_json()["status"] == "disabled"
    assert client.post(f"{base}/enable", headers=owner).get_json()["status"] == "active"
    rotated = client.post(f"{base}/rotate-secret", headers=owner).get_json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != body["secret"]
    assert rotated["previous_signs_until"] is not None
    assert client.post(f"{base}/redeliver", headers=owner).get_json() == {
        "id": endpoint_id,
        "queued": 0,
    }
    assert client.post("/api/v1/webhooks/999/disable", headers=owner).status_code == 404
    assert client.post(f"{base}/explode", headers=owner).status_code == 404
    disabled = client.post(f"{base}/disable", headers=owner).get_json()
    assert disabled == {"id": endpoint_id, "status": "disabled", "held": 0}
    assert client.post(f"{base}/redeliver", headers=owner).status_code == 409
    with uow(app) as s:
        entries = audit.entries(s, audit.Filters(object_type="webhook_endpoint"))
    assert [e.action for e in reversed(entries)] == [
        "webhook.added",
        "webhook.disabled",
        "webhook.enabled",
        "webhook.secret_rotated",
        "webhook.redelivered",
        "webhook.disabled",
    ]
    assert all(e.object_id == str(endpoint_id) for e in entries)


def test_webhook_errors_are_the_apis_problems(make_app):
    """Answered as every operation is: problem+json, never a 500, CSRF for a console."""
    app = make_app()
    client = app.test_client()
    owner = bearer(factories.personal_token(app, "owner"))
    problems = {
        "not JSON": (client.post("/api/v1/webhooks", data="url=x", headers=owner), 415),
        "not an object": (client.post("/api/v1/webhooks", json=["x"], headers=owner), 400),
        "unknown event": (
            client.post(
                "/api/v1/webhooks",
                json={"url": "https://192.0.2.1/x", "events": ["lead.nonsense"]},
                headers=owner,
            ),
            422,
        ),
        "id too large": (client.post(f"/api/v1/webhooks/{2**70}/enable", headers=owner), 404),
        "no credentials": (client.get("/api/v1/webhooks"), 401),
    }
    for what, (response, status) in problems.items():
        assert response.status_code == status, (what, response.get_data(as_text=True))
        assert response.mimetype == "application/problem+json", what
        assert response.get_json()["detail"], what
    assert "events" in problems["unknown event"][0].get_json()["errors"]
    console, _user_id = factories.signed_in_client(app, "owner")
    without = console.post("/api/v1/webhooks", json={"url": "https://192.0.2.1/x"})
    assert without.status_code == 400 and without.mimetype == "application/problem+json"


ACTIONS = ("disable", "enable", "rotate-secret", "redeliver")


def test_exports_imports_and_webhooks_are_in_the_openapi_document(app):
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    export = document["paths"]["/exports"]["post"]
    assert export["x-permission"] == "leads:export"
    assert set(export["responses"]["200"]["content"]) == {
        "text/csv",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/x-ndjson",
    }
    assert export["responses"]["200"]["content"]["text/csv"]["schema"]["format"] == "binary"
    body = export["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ExportRequest"}
    assert {"400", "401", "403", "422"} <= set(export["responses"])
    imported = document["paths"]["/imports"]["post"]
    assert imported["x-permission"] == "leads:write"
    assert list(imported["requestBody"]["content"]) == ["text/csv"]
    assert {p["name"] for p in imported["parameters"]} >= {"purpose", "preset", "dry_run"}
    report = imported["responses"]["200"]["content"]["application/json"]["schema"]
    assert report == {"$ref": "#/components/schemas/ImportReport"}
    assert "outcomes" in document["components"]["schemas"]["ImportReport"]["properties"]
    assert {"413", "422"} <= set(imported["responses"])
    webhook_paths = {path for path in document["paths"] if path.startswith("/webhooks")}
    assert webhook_paths == {
        "/webhooks",
        *(f"/webhooks/{{endpoint_id}}/{action}" for action in ACTIONS),
    }
    added = document["paths"]["/webhooks"]["post"]
    assert added["x-permission"] == "settings:manage"
    assert set(added["responses"]) >= {"201", "401", "403", "415", "422"}
    secret = added["responses"]["201"]["content"]["application/json"]["schema"]
    assert secret == {"$ref": "#/components/schemas/WebhookAdded"}
    assert "lead.erased" in str(document["components"]["schemas"]["WebhookRequest"])
    redeliver = document["paths"]["/webhooks/{endpoint_id}/redeliver"]["post"]
    assert {"404", "409"} <= set(redeliver["responses"])


def test_a_misspelt_key_is_refused_not_ignored(make_app):
    """An export, import or webhook request with a key the operation does not have is
    refused naming it (422), as every other operation's: ignored, ``"stages"`` exported
    every lead, ``dryrun=true`` imported for real and ``"event"`` subscribed an endpoint
    to every event type."""
    from tests.test_webhooks import LOOPBACK

    app = make_app(webhook_allow_networks=LOOPBACK)
    factories.lead(app, "anna@example.org", purposes=("newsletter",))
    client = app.test_client()
    owner = bearer(factories.personal_token(app, "owner"))
    for body in ({"stages": ["won"]}, {"stage": ["won"], "created_since": "2026-01-01"}):
        refused = client.post("/api/v1/exports", json=body, headers=owner)
        assert refused.status_code == 422, refused.get_data(as_text=True)
        assert refused.mimetype == "application/problem+json"
        assert set(refused.get_json()["errors"]) == set(body) - {"stage"}
    assert client.post("/api/v1/exports", json={"stage": ["won"]}, headers=owner).status_code == 200

    data = csv_bytes(
        [HEADER, ["ina@example.org", "Ina", "", "", "", "2021-04-01T08:00:00Z", "fair", PROOF_TEXT]]
    )
    typo = client.post(
        "/api/v1/imports?dryrun=true", data=data, content_type="text/csv", headers=owner
    )
    assert typo.status_code == 422 and set(typo.get_json()["errors"]) == {"dryrun"}
    with uow(app) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Lead)) == 1  # Anna only

    url = "http://127.0.0.1:9/hooks/x"
    hook = client.post(
        "/api/v1/webhooks", json={"url": url, "event": ["lead.erased"]}, headers=owner
    )
    assert hook.status_code == 422 and set(hook.get_json()["errors"]) == {"event"}
    assert client.get("/api/v1/webhooks", headers=owner).get_json() == []


def test_the_console_lists_export_still_posts_its_form(app):
    """The lead list's form posts its bulk fields (stage, reason, CSRF) with the export."""
    lead_id = factories.lead(app, "anna@example.org", purposes=("newsletter",))
    console, _user = factories.signed_in_client(app, "owner")
    csrf = factories.csrf_token(console, "/console/leads")
    exported = console.post(
        "/api/v1/exports",
        data={"csrf_token": csrf, "lead": str(lead_id), "to": "sal", "reason": "", "format": "csv"},
    )
    assert exported.status_code == 200, exported.get_data(as_text=True)
    assert str(lead_id) in exported.get_data(as_text=True)
