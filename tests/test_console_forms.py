"""The console's forms section (issue 12.4) through the Flask client and the real sign-in:
list with submissions and confirmation rate, create with per-field errors, edit,
preview and embed snippets, archive, delete only while never used; roles."""

from __future__ import annotations

import re

from capture import service as capture_service
from leadvault import audit
from tests import factories
from tests.factories import uow


def _csrf(client, path):
    return factories.csrf_token(client, path)


def _new(client, **changes):
    data = {
        "csrf_token": _csrf(client, "/console/forms/new"),
        "name": "Spring guide (staff)",
        "kind": "newsletter",
        "title_en": "Our spring letter",
        "title_de": "Unser Frühlingsbrief",
        "intro_en": "Once a month.",
        "intro_de": "Einmal im Monat.",
        "field_first_name": "required",
        "field_company": "optional",
        "purpose_newsletter": "required",
        "version_newsletter_en": "1",
        "version_newsletter_de": "1",
        "allowed_origins": "https://www.example.com\nhttps://shop.example.com/",
        "after": "thanks",
        "thank_you_en": "Thanks!",
        "follow_up_fields": ["job_title"],
    }
    data.update(changes)
    return client.post("/console/forms/new", data={k: v for k, v in data.items() if v is not None})


def test_owner_creates_edits_archives_a_form(app):
    client, _ = factories.signed_in_client(app, "owner")
    created = _new(client)
    assert created.status_code == 302, created.get_data(as_text=True)[:2000]
    form_id = re.search(r"/console/forms/([^/?]+)", created.headers["Location"]).group(1)
    with uow(app) as s:
        form = capture_service.get_form(s, form_id)
        assert form.title == {"en": "Our spring letter", "de": "Unser Frühlingsbrief"}
        assert form.fields == [
            {"name": "first_name", "required": True},
            {"name": "company", "required": False},
        ]
        assert form.allowed_origins == ["https://shop.example.com", "https://www.example.com"]
        assert form.follow_up_fields == ["job_title"] and form.redirect_url is None

    page = client.get(f"/console/forms/{form_id}").get_data(as_text=True)
    assert page.count("<h1") == 1
    for lang in ("en", "de"):  # live preview of the hosted page in both languages
        assert f'src="/f/{form_id}?lang={lang}"' in page
    assert f"data-leadvault-form=&#34;{form_id}&#34;" in page  # the JavaScript loader
    assert f"&lt;iframe src=&#34;http://127.0.0.1:5000/f/{form_id}" in page
    assert 'data-copy="snippet-1"' in page
    preview = client.get(f"/f/{form_id}?lang=de")
    assert "frame-ancestors 'self'" in preview.headers["Content-Security-Policy"]
    assert "<h1>Unser Frühlingsbrief</h1>" in preview.get_data(as_text=True)
    assert "frame-src 'self'" in client.get("/console/forms").headers["Content-Security-Policy"]

    edit_page = client.get(f"/console/forms/{form_id}/edit").get_data(as_text=True)
    assert 'value="Our spring letter"' in edit_page
    edited = client.post(
        f"/console/forms/{form_id}/edit",
        data={
            "csrf_token": _csrf(client, f"/console/forms/{form_id}/edit"),
            "name": "Spring guide (staff)",
            "kind": "newsletter",
            "title_en": "Spring letter",
            "purpose_newsletter": "optional",
            "version_newsletter_en": "1",
            "version_newsletter_de": "1",
            "allowed_origins": "https://www.example.com",
            "after": "redirect",
            "redirect_url": "https://www.example.com/danke",
        },
    )
    assert edited.status_code == 302, edited.get_data(as_text=True)[:3000]
    with uow(app) as s:
        form = capture_service.get_form(s, form_id)
        assert form.title == {"en": "Spring letter"} and form.fields == []
        assert form.redirect_url == "https://www.example.com/danke"
        assert form.purposes == [{"purpose": "newsletter", "required": False}]

    factories.lead(app, form_id=form_id, purposes=["newsletter"])
    listed = client.get("/console/forms").get_data(as_text=True)
    assert "Spring guide (staff)" in listed and "100 %" in listed and "(1/1)" in listed

    token = _csrf(client, f"/console/forms/{form_id}")
    assert client.get(f"/console/forms/{form_id}/delete").status_code == 200
    refused = client.post(f"/console/forms/{form_id}/delete", data={"csrf_token": token})
    assert refused.status_code == 409 and "archive it instead" in refused.get_data(as_text=True)
    archived = client.post(f"/console/forms/{form_id}/archive", data={"csrf_token": token})
    assert archived.status_code == 302
    assert client.get(f"/f/{form_id}").status_code == 404
    with uow(app) as s:
        actions = sorted(
            e.action for e in audit.entries(s, audit.Filters(object_id=form_id), limit=20)
        )
    assert actions == ["form.archived", "form.changed", "form.created"]


def test_errors_are_shown_next_to_their_fields_in_german(app):
    client, _ = factories.signed_in_client(app, "marketing")
    client.post(
        "/console/language",
        data={"lang": "de", "csrf_token": _csrf(client, "/console/forms"), "next": "/"},
    )
    answer = _new(client, name="", redirect_url="https://evil.example.net/", after="redirect")
    assert answer.status_code == 422
    body = answer.get_data(as_text=True)
    assert 'id="name" name="name"' in body and 'aria-invalid="true"' in body
    assert "Bitte geben Sie dem Formular einen Namen." in body
    answer = _new(client, redirect_url="https://evil.example.net/", after="redirect")
    assert answer.status_code == 422
    body = answer.get_data(as_text=True)
    assert 'id="redirect_url-error"' in body
    assert "erlaubten Herkünfte" in body
    answer = _new(client, purpose_newsletter="")
    assert answer.status_code == 422 and 'id="group-purposes-error"' in answer.get_data(
        as_text=True
    )
    answer = _new(client, allowed_origins="not an origin")
    assert 'id="allowed_origins-error"' in answer.get_data(as_text=True)
    assert _new(client, csrf_token="forged").status_code == 400


def test_roles(app):
    form_id = factories.form(app, name="Matrix")
    viewer, _ = factories.signed_in_client(app, "viewer")
    listed = viewer.get("/console/forms")
    assert listed.status_code == 200 and "Matrix" in listed.get_data(as_text=True)
    assert "/console/forms/new" not in listed.get_data(as_text=True)
    assert viewer.get("/console/forms/new").status_code == 403
    assert viewer.get(f"/console/forms/{form_id}/edit").status_code == 403
    sales, _ = factories.signed_in_client(
        app, "sales", salesperson_id=factories.salesperson(app, factories.unique_email(), "S")
    )
    assert sales.get("/console/forms").status_code == 403
    owner, _ = factories.signed_in_client(app, "owner")
    assert owner.get("/console/forms/nope").status_code == 404
    unused = factories.form(app, name="Unused")
    token = _csrf(owner, f"/console/forms/{unused}/delete")
    deleted = owner.post(f"/console/forms/{unused}/delete", data={"csrf_token": token})
    assert deleted.status_code == 302
    assert owner.get(f"/console/forms/{unused}").status_code == 404
