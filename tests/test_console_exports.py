"""Console pages for exports, imports and webhooks (issue 14.4): the lead list's
filters carried into a streamed, audited download; an upload checked line by line
and then imported; webhook endpoints added, pinged, rotated, disabled and their log."""

from __future__ import annotations

import csv
import io
import json
import re

import sqlalchemy as sa

from export.models import WebhookEndpoint, WebhookMessage
from leadvault import audit, leads
from leadvault.models import Lead
from tests import factories
from tests.factories import uow
from tests.test_imports import HEADER, PROOF_TEXT, csv_bytes


def _console(app, role: str):
    client, _user_id = factories.signed_in_client(app, role)
    return client, factories.csrf_token(client, "/admin/account")


def test_export_page_takes_the_lead_list_filters_and_streams_an_audited_file(app):
    from scoring import stages

    mql = factories.lead(app, "mia@example.org", profile={"first_name": "Mia"})
    factories.lead(app, "ned@example.org", profile={"first_name": "Ned"})
    with uow(app) as s:
        state = stages.state_of(s, mql, for_update=True)
        stages.transition(s, state, "mql", cause_kind="rule", cause="test")
    client, csrf = _console(app, "marketing")
    page = client.get("/console/exports?stage=mql")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "1 lead matches the filter" in html and "stage=mql" in html
    assert 'name="stage" value="mql"' in html  # carried into the download form
    assert re.search(r'<option value="excel"\s+selected', html)  # an English console

    download = client.post(
        "/console/exports",
        data={
            "csrf_token": csrf,
            "stage": "mql",
            "format": "csv",
            "dialect": "excel-de",
            "column": ["id", "email", "first_name", "stage"],
        },
    )
    assert download.status_code == 200, download.get_data(as_text=True)[:500]
    assert download.headers["Content-Disposition"].startswith("attachment;")
    text = download.get_data().decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff")), delimiter=";"))
    assert [(r["id"], r["email"], r["first_name"], r["stage"]) for r in rows] == [
        (str(mql), "mia@example.org", "Mia", "mql")
    ]
    with uow(app) as s:
        [entry] = audit.entries(s, audit.Filters(action="leads.exported"))
    detail = json.loads(entry.detail) if isinstance(entry.detail, str) else entry.detail
    assert detail["rows"] == 1 and detail["filter"] == "stage=mql"
    assert "mia@example.org" not in str(detail)


def test_export_page_in_german_preselects_german_excel_and_refuses_an_empty_choice(app):
    factories.lead(app)
    client, csrf = _console(app, "owner")
    html = client.get("/console/exports?lang=de").get_data(as_text=True)
    assert re.search(r'<option value="excel-de"\s+selected', html)
    assert "Leads exportieren" in html
    empty = client.post("/console/exports?lang=de", data={"csrf_token": csrf, "format": "csv"})
    assert empty.status_code == 422
    assert "Spalte" in empty.get_data(as_text=True)
    bad = client.get("/console/exports?stage=nonsense")
    assert bad.status_code == 400
    no_csrf = client.post("/console/exports", data={"format": "csv", "column": "id"})
    assert no_csrf.status_code == 400


def test_export_of_leads_chosen_one_by_one_and_a_preset(app):
    chosen = factories.lead(app, "pia@example.org", purposes=("newsletter", "sales_contact"))
    other = factories.lead(app, "quinn@example.org", purposes=("newsletter", "sales_contact"))
    no_sales = factories.lead(app, "rey@example.org")
    client, csrf = _console(app, "owner")
    page = client.get(f"/console/exports?lead={chosen}&lead={no_sales}")
    assert "2 leads chosen in the list" in page.get_data(as_text=True)
    download = client.post(
        "/console/exports",
        data={
            "csrf_token": csrf,
            "lead": [str(chosen), str(no_sales)],
            "preset": "hubspot",
            "format": "csv",
            "dialect": "excel",
        },
    )
    rows = list(csv.DictReader(io.StringIO(download.get_data().decode("utf-8"))))
    # Only the chosen lead with sales consent: not the other one, not the one without.
    assert [r["Email"] for r in rows] == ["pia@example.org"]
    assert str(other) not in download.get_data(as_text=True)


def test_roles_for_the_pages(app):
    for role, allowed in {
        "owner": {"/console/exports", "/console/imports", "/console/webhooks"},
        "marketing": {"/console/exports", "/console/imports"},
        "viewer": set(),
        "sales": set(),
    }.items():
        client, _ = _console(app, role)
        for path in ("/console/exports", "/console/imports", "/console/webhooks"):
            status = client.get(path).status_code
            assert (status == 200) == (path in allowed), (role, path, status)
            assert status in (200, 403), (role, path, status)


def test_import_page_checks_every_line_then_imports(app):
    data = csv_bytes(
        [
            HEADER,
            ["ina@example.org", "Ina", "", "", "", "2021-04-01T08:00:00Z", "fair", PROOF_TEXT],
            ["broken", "", "", "", "", "", "", ""],
            ["jo@example.org", "Jo", "", "", "", "", "", ""],
        ]
    )
    client, csrf = _console(app, "marketing")
    assert "Import contacts" in client.get("/console/imports").get_data(as_text=True)

    def upload(mode: str):
        return client.post(
            "/console/imports",
            data={
                "csrf_token": csrf,
                "file": (io.BytesIO(data), "contacts.csv"),
                "purpose": "newsletter",
                "preset": "auto",
                "language": "en",
                "mode": mode,
            },
            content_type="multipart/form-data",
        )

    dry = upload("check")
    html = dry.get_data(as_text=True)
    assert dry.status_code == 200, html[:500]
    assert "nothing was stored" in html
    lines = re.findall(r'<th scope="row">(\d+)</th><td>(\w+)</td>', html)
    assert lines == [("2", "new"), ("3", "refused"), ("4", "new")]
    assert "ina@example.org" not in html
    with uow(app) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Lead)) == 0

    real = upload("run")
    html = real.get_data(as_text=True)
    assert real.status_code == 200, html[:500]
    assert re.findall(r'<th scope="row">(\d+)</th><td>(\w+)</td>', html) == [("3", "refused")]
    with uow(app) as s:
        assert leads.find_by_email(s, "ina@example.org") is not None
        assert leads.find_by_email(s, "jo@example.org") is not None

    missing = client.post(
        "/console/imports",
        data={"csrf_token": csrf, "mode": "check"},
        content_type="multipart/form-data",
    )
    assert missing.status_code == 422 and "Choose a CSV file" in missing.get_data(as_text=True)
    unreadable = client.post(
        "/console/imports",
        data={"csrf_token": csrf, "file": (io.BytesIO(b"name\nx\n"), "x.csv"), "mode": "check"},
        content_type="multipart/form-data",
    )
    assert unreadable.status_code == 422
    assert "cannot be imported" in unreadable.get_data(as_text=True)


def test_webhook_pages(make_app):
    from tests.test_webhooks import LOOPBACK

    app = make_app(webhook_allow_networks=LOOPBACK)
    client, csrf = _console(app, "owner")
    assert "No endpoints yet" in client.get("/console/webhooks").get_data(as_text=True)
    refused = client.post(
        "/console/webhooks", data={"csrf_token": csrf, "url": "http://169.254.169.254/latest"}
    )
    assert refused.status_code == 422
    assert "not added" in refused.get_data(as_text=True)

    added = client.post(
        "/console/webhooks",
        data={
            "csrf_token": csrf,
            "url": "http://127.0.0.1:9/hooks/capability-token",
            "event": ["lead.erased", "lead.confirmed"],
            "description": "CRM",
        },
    )
    html = added.get_data(as_text=True)
    assert added.status_code == 200, html[:500]
    secret = re.search(r'value="(whsec_[A-Za-z0-9+/=]+)"', html).group(1)
    with uow(app) as s:
        endpoint = s.scalars(sa.select(WebhookEndpoint)).one()
        assert sorted(endpoint.event_types) == ["lead.confirmed", "lead.erased"]
        endpoint_id = endpoint.id
    listed = client.get("/console/webhooks").get_data(as_text=True)
    assert "http://127.0.0.1:9" in listed and "capability-token" not in listed
    assert secret not in listed

    base = f"/console/webhooks/{endpoint_id}"
    pinged = client.post(f"{base}/test", data={"csrf_token": csrf})
    assert pinged.status_code == 302
    detail = client.get(pinged.headers["Location"]).get_data(as_text=True)
    assert "A test event was queued" in detail and "webhook.test" in detail
    with uow(app) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(WebhookMessage)) == 1

    rotated = client.post(f"{base}/rotate-secret", data={"csrf_token": csrf}).get_data(as_text=True)
    new_secret = re.search(r'value="(whsec_[A-Za-z0-9+/=]+)"', rotated).group(1)
    assert new_secret != secret and "also signs until" in rotated
    assert new_secret not in client.get(base).get_data(as_text=True)

    client.post(f"{base}/disable", data={"csrf_token": csrf})
    assert "The endpoint is disabled" in client.get(f"{base}?done=disable").get_data(as_text=True)
    # A ?done= the page has no notice for shows none (it showed an empty notice box).
    assert 'class="notice" role="status"' not in client.get(f"{base}?done=x").get_data(as_text=True)
    assert client.post(f"{base}/test", data={"csrf_token": csrf}).status_code == 409
    client.post(f"{base}/enable", data={"csrf_token": csrf})
    # The ping held back while the endpoint was disabled goes out again.
    queued = client.post(f"{base}/redeliver", data={"csrf_token": csrf})
    assert "count=1" in queued.headers["Location"]
    assert client.get("/console/webhooks/999").status_code == 404
    assert client.post(f"{base}/test").status_code == 400  # no CSRF token
    with uow(app) as s:
        entries = audit.entries(s, audit.Filters(object_type="webhook_endpoint"))
    assert [(e.action, audit.detail_of(e)) for e in reversed(entries)] == [
        ("webhook.added", {"events": ["lead.confirmed", "lead.erased"], "purpose": None}),
        ("webhook.tested", {}),  # the refused ping (disabled endpoint) is not
        ("webhook.secret_rotated", {}),
        ("webhook.disabled", {"held": 1}),
        ("webhook.enabled", {}),
        ("webhook.redelivered", {"queued": 1}),
    ]
