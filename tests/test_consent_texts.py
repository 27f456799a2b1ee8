"""Consent texts and purposes (issue 12.5, issue 11.4 "consent texts (new version)"):
a new version never changes a published one, new submissions get it, old proofs
keep theirs; which forms show which version; the same service behind the command
line, the admin API and the console."""

from __future__ import annotations

import sqlalchemy as sa
from click.testing import CliRunner

from capture import service as capture_service
from consent import texts
from consent.models import ConsentText, LedgerEntry
from leadvault import audit
from leadvault.cli import cli
from tests import factories
from tests.factories import uow

V1 = "Yes, send me the newsletter."
V2 = "Please send me the monthly newsletter. I can unsubscribe at any time."


def _shown(app, form_id, lang="en", purpose="newsletter"):
    with uow(app) as s:
        form = capture_service.get_form(s, form_id)
        assert form is not None
        return s.get(ConsentText, form.consent_texts[lang][purpose])


def _token(app, role="marketing"):
    return {"Authorization": f"Bearer {factories.personal_token(app, role)}"}


def test_new_version_reaches_new_submissions_and_old_proofs_keep_theirs(app):
    form_id = factories.form(app)
    first = factories.lead(app, form_id=form_id)
    v1 = _shown(app, form_id)
    with uow(app) as s:
        published = texts.publish(s, purpose="newsletter", language="en", text=V2)
        new_id = published.text.id
        assert published.previous is not None and published.previous.id == v1.id
        assert published.text.version == v1.version + 1
        assert form_id in published.forms_moved
    # The published version is untouched; the form now shows the new one (German stays).
    with uow(app) as s:
        assert s.get(ConsentText, v1.id).text == v1.text
    assert _shown(app, form_id).id == new_id
    assert _shown(app, form_id, "de").language == "de"
    second = factories.lead(app, form_id=form_id)
    with uow(app) as s:
        old = s.scalars(sa.select(LedgerEntry).where(LedgerEntry.subject == str(first))).all()
        new = s.scalars(sa.select(LedgerEntry).where(LedgerEntry.subject == str(second))).all()
    assert {e.text_id for e in old if e.text_id} == {v1.id}
    assert {e.text_id for e in new if e.text_id} == {new_id}


def test_adopt_false_and_archived_forms_keep_their_version(app):
    kept = factories.form(app, name="Kept")
    archived = factories.form(app, name="Old")
    with uow(app) as s:
        capture_service.get_form(s, archived).active = False
    v1 = _shown(app, kept)
    with uow(app) as s:
        published = texts.publish(s, purpose="newsletter", language="en", text=V2, adopt=False)
        assert published.forms_moved == []
    assert _shown(app, kept).id == v1.id
    with uow(app) as s:
        published = texts.publish(s, purpose="newsletter", language="en", text=V2 + " Really.")
        assert kept in published.forms_moved and archived not in published.forms_moved


def test_diff_names_removed_and_added_words():
    parts = texts.diff(V1, V2)
    added = "".join(p.text for p in parts if p.kind == "added")
    removed = "".join(p.text for p in parts if p.kind == "removed")
    assert "monthly" in added and "unsubscribe" in added
    assert removed == "Yes,"
    assert "".join(p.text for p in parts if p.kind != "added") == V1
    assert "".join(p.text for p in parts if p.kind != "removed") == V2


def test_refusals_name_the_problem(app):
    with uow(app) as s:
        current = texts.overview(s, purpose="newsletter")[0].current("en")
        for text, fragment in [
            ("   ", "empty"),
            (current.text, "same as the current"),
            ("a\x1bb", "control characters"),
            ("x" * 4001, "4000"),
        ]:
            try:
                texts.publish(s, purpose="newsletter", language="en", text=text)
            except texts.service.ConsentError as exc:
                assert fragment in str(exc)
            else:
                raise AssertionError(text)


def test_crlf_from_a_browser_is_stored_as_lf(app):
    with uow(app) as s:
        row = texts.publish(s, purpose="tracking", language="de", text="Eins\r\nZwei\r\n").text
        assert row.text == "Eins\nZwei"
        assert texts.preview(s, purpose="tracking", language="de", text="Eins\r\nDrei")


def test_cli_uses_the_same_service(app):
    form_id = factories.form(app)
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["consent", "add-text", "--purpose", "newsletter", "--lang", "en", "--text", V2],
        obj=app,
    )
    assert result.exit_code == 0, result.output
    assert "v2" in result.output and form_id in result.output
    assert _shown(app, form_id).text == V2
    again = runner.invoke(
        cli,
        ["consent", "add-text", "--purpose", "newsletter", "--lang", "en", "--text", V2],
        obj=app,
    )
    assert again.exit_code != 0 and "same as the current version" in again.output
    listed = runner.invoke(cli, ["consent", "texts"], obj=app)
    assert listed.output.index("en v2") < listed.output.index("en v1")


# --- the admin API -------------------------------------------------------------------------


def test_api_lists_purposes_versions_and_forms(app, client):
    form_id = factories.form(app)
    response = client.get("/api/v1/consent/purposes?versions=5", headers=_token(app, "privacy"))
    assert response.status_code == 200
    purposes = {p["key"]: p for p in response.get_json()}
    assert set(purposes) >= {"newsletter", "whitepaper", "sales_contact", "tracking"}
    newest = purposes["newsletter"]["versions"]["en"][0]
    assert newest["version"] == 1 and len(newest["sha256"]) == 64
    assert form_id in [f["id"] for f in newest["forms"]]
    one = client.get("/api/v1/consent/purposes/newsletter", headers=_token(app, "privacy"))
    assert one.get_json()["key"] == "newsletter"
    missing = client.get("/api/v1/consent/purposes/nope", headers=_token(app, "privacy"))
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"
    denied = client.get("/api/v1/consent/purposes", headers=_token(app, "viewer"))
    assert denied.status_code == 403 and denied.mimetype == "application/problem+json"


def test_api_publishes_a_new_version_with_its_diff_and_one_audit_entry(app, client):
    form_id = factories.form(app)
    headers = _token(app)
    response = client.post(
        "/api/v1/consent/purposes/newsletter/texts",
        json={"language": "en", "text": V2},
        headers=headers,
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert body["text"]["version"] == 2 and body["previous_version"] == 1
    assert body["forms_moved"] == [form_id]
    assert [f["id"] for f in body["text"]["forms"]] == [form_id]
    assert {"kind": "removed", "text": "Yes,"} in body["diff"]
    assert any(p["kind"] == "added" and "monthly" in p["text"] for p in body["diff"])
    with uow(app) as s:
        entries = audit.entries(s, audit.Filters(action="consent_text.published"))
    assert len(entries) == 1 and entries[0].object_id == str(body["text"]["id"])

    same = client.post(
        "/api/v1/consent/purposes/newsletter/texts",
        json={"language": "en", "text": V2},
        headers=headers,
    )
    assert same.status_code == 409 and "same" in same.get_json()["detail"]
    bad = client.post(
        "/api/v1/consent/purposes/newsletter/texts",
        json={"language": "fr", "text": "Oui"},
        headers=headers,
    )
    assert bad.status_code == 422 and "language" in bad.get_json()["errors"]
    privacy = client.post(
        "/api/v1/consent/purposes/newsletter/texts",
        json={"language": "en", "text": V2 + "!"},
        headers=_token(app, "privacy"),
    )
    assert privacy.status_code == 403
