"""Forms as an owner defines them (issue 11.4, 12.4, 15.2): the service behind the admin
API, the console and the command line; create, edit (PUT/PATCH), consent text versions
per language, the redirect only to an allowed origin, the title and intro on the hosted
page, delete while never used, else archive; every change audited."""

from __future__ import annotations

from click.testing import CliRunner

from consent import service as consent_service
from leadvault import audit
from leadvault.cli import cli
from tests import factories
from tests.factories import uow

ORIGIN = "https://www.example.com"


def _auth(app, role="marketing"):
    return {"Authorization": f"Bearer {factories.personal_token(app, role)}"}


def _actions(app, public_id):
    with uow(app) as s:
        entries = audit.entries(s, audit.Filters(object_id=public_id), limit=50)
        return sorted(e.action for e in entries)


NEW = {
    "name": "Spring guide (staff)",
    "kind": "newsletter",
    "title": {"en": "Our spring newsletter", "de": "Unser Frühlings-Newsletter"},
    "intro": {"en": "Once a month.\n\nNo spam.", "de": "Einmal im Monat.\n\nKein Spam."},
    "fields": [{"name": "first_name", "required": True}, {"name": "company"}],
    "allowed_origins": ["https://WWW.example.com/"],
    "redirect_url": f"{ORIGIN}/thanks",
    "thank_you": {"en": "Check your inbox", "de": "Bitte prüfen Sie Ihr Postfach"},
    "follow_up_fields": ["job_title"],
}


def test_create_shows_title_and_intro_on_the_hosted_page(app, client):
    created = client.post("/api/v1/forms", json=NEW, headers=_auth(app))
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    form_id = body["public_id"]
    assert body["allowed_origins"] == [ORIGIN]
    assert body["purposes"] == [{"purpose": "newsletter", "required": True}]
    assert body["consent_versions"] == {"en": {"newsletter": 1}, "de": {"newsletter": 1}}
    assert body["fields"] == [
        {"name": "first_name", "required": True},
        {"name": "company", "required": False},
    ]
    german = client.get(f"/f/{form_id}?lang=de").get_data(as_text=True)
    assert "<h1>Unser Frühlings-Newsletter</h1>" in german
    assert "<p>Einmal im Monat.</p><p>Kein Spam.</p>" in german
    english = client.get(f"/f/{form_id}?lang=en").get_data(as_text=True)
    assert "<h1>Our spring newsletter</h1>" in english
    assert "Spring guide (staff)" not in english  # the staff name stays with staff
    assert _actions(app, form_id) == ["form.created"]


def test_bad_definitions_are_422_naming_the_field(app, client):
    headers = _auth(app)
    cases = {
        "redirect_url": {**NEW, "redirect_url": "https://evil.example.net/x"},
        "fields": {**NEW, "fields": [{"name": "password"}]},
        "purposes": {**NEW, "purposes": [{"purpose": "nonsense"}]},
        "allowed_origins": {**NEW, "allowed_origins": ["ftp://example.com"]},
        "consent_versions": {**NEW, "consent_versions": {"de": {"newsletter": 99}}},
        "title": {**NEW, "title": {"en": "x" * 201}},
    }
    for field, body in cases.items():
        answer = client.post("/api/v1/forms", json=body, headers=headers)
        assert answer.status_code == 422, (field, answer.get_json())
        assert answer.mimetype == "application/problem+json"
        assert field in answer.get_json()["errors"], (field, answer.get_json())
    assert client.post("/api/v1/forms", json=NEW, headers=_auth(app, "viewer")).status_code == 403
    assert client.post("/api/v1/forms", data="x", headers=headers).status_code == 415


def test_patch_changes_some_keys_and_pins_consent_versions(app, client):
    headers = _auth(app)
    form_id = client.post("/api/v1/forms", json=NEW, headers=headers).get_json()["public_id"]
    with uow(app) as s:
        consent_service.add_text(
            s, purpose="newsletter", language="de", text="Neue Fassung: Newsletter per E-Mail."
        )
    patched = client.patch(
        f"/api/v1/forms/{form_id}", json={"title": {"en": "Spring letter"}}, headers=headers
    )
    assert patched.status_code == 200, patched.get_json()
    body = patched.get_json()
    assert body["title"] == {"en": "Spring letter"}
    assert body["redirect_url"] == f"{ORIGIN}/thanks" and body["follow_up_fields"] == ["job_title"]
    # An unrelated edit keeps the version the form showed; a new one is chosen on purpose.
    assert body["consent_versions"]["de"] == {"newsletter": 1}
    german = client.get(f"/f/{form_id}?lang=de").get_data(as_text=True)
    assert "Neue Fassung" not in german
    assert "<h1>Spring letter</h1>" in german  # no German title: the English one, not the name
    chosen = client.patch(
        f"/api/v1/forms/{form_id}",
        json={"consent_versions": {"de": {"newsletter": 2}}},
        headers=headers,
    )
    assert chosen.get_json()["consent_versions"] == {
        "en": {"newsletter": 1},
        "de": {"newsletter": 2},
    }
    assert "Neue Fassung" in client.get(f"/f/{form_id}?lang=de").get_data(as_text=True)
    # The redirect must stay on the form's own sites.
    away = client.patch(
        f"/api/v1/forms/{form_id}",
        json={"allowed_origins": ["https://shop.example.com"]},
        headers=headers,
    )
    assert away.status_code == 422 and "redirect_url" in away.get_json()["errors"]
    replaced = client.put(
        f"/api/v1/forms/{form_id}", json={"name": "Plain", "kind": "newsletter"}, headers=headers
    )
    assert replaced.status_code == 200
    assert replaced.get_json()["title"] == {} and replaced.get_json()["redirect_url"] is None
    assert _actions(app, form_id) == [
        "form.changed",
        "form.changed",
        "form.changed",
        "form.created",
    ]


def test_delete_only_while_never_used_else_archive(app, client):
    headers = _auth(app)
    unused = client.post("/api/v1/forms", json=NEW, headers=headers).get_json()["public_id"]
    assert client.delete(f"/api/v1/forms/{unused}", headers=headers).status_code == 204
    assert client.get(f"/api/v1/forms/{unused}", headers=headers).status_code == 404
    assert _actions(app, unused) == ["form.created", "form.deleted"]

    used = client.post("/api/v1/forms", json=NEW, headers=headers).get_json()["public_id"]
    factories.lead(app, form_id=used)
    refused = client.delete(f"/api/v1/forms/{used}", headers=headers)
    assert refused.status_code == 409 and refused.mimetype == "application/problem+json"
    assert "archive" in refused.get_json()["detail"]
    assert client.post(f"/api/v1/forms/{used}/archive", headers=headers).status_code == 200
    assert client.get(f"/f/{used}").status_code == 404
    restored = client.post(f"/api/v1/forms/{used}/restore", headers=headers)
    assert restored.get_json()["active"] is True
    assert client.get(f"/f/{used}").status_code == 200


def test_command_line_uses_the_same_service(app):
    def run(*args):
        return CliRunner().invoke(cli, ["forms", *args], obj=app)

    made = run(
        "add",
        "--name",
        "CLI form",
        "--kind",
        "contact",
        "--field",
        "company!",
        "--origin",
        ORIGIN,
        "--title-de",
        "Kontakt",
        "--redirect",
        "https://elsewhere.example/",
    )
    assert made.exit_code == 1 and "redirect" in made.output
    made = run("add", "--name", "CLI form", "--kind", "contact", "--title-de", "Kontakt")
    assert made.exit_code == 0, made.output
    public_id = made.output.split()[1]
    assert run("delete", public_id).exit_code == 0
    assert _actions(app, public_id) == ["form.deleted"]
    used = run("add", "--name", "Used", "--kind", "newsletter").output.split()[1]
    factories.lead(app, form_id=used)
    refused = run("delete", used)
    assert refused.exit_code == 1 and f"leadvault forms archive {used}" in refused.output
    assert run("archive", used).exit_code == 0
    assert _actions(app, used) == ["form.archived"]
    made = run("add", "--name", "Used", "--kind", "newsletter", "--field", "nonsense")
    assert made.exit_code == 1 and "fields" in made.output


def test_refusals_answer_in_the_requests_language(app, client):
    """Like every other API refusal (the forms endpoints answered in English)."""
    body = {**NEW, "redirect_url": "https://evil.example.net/x"}
    english = client.post("/api/v1/forms", json=body, headers=_auth(app))
    german = client.post(
        "/api/v1/forms", json=body, headers={**_auth(app), "Accept-Language": "de"}
    )
    assert english.status_code == german.status_code == 422
    said_in_english = english.get_json()["errors"]["redirect_url"][0]
    said_in_german = german.get_json()["errors"]["redirect_url"][0]
    assert said_in_english.startswith("The redirect must be a page on one of the form's")
    assert said_in_german.startswith("Die Weiterleitung muss auf eine Seite")
