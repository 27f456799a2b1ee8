"""Console pages for consent texts and purposes (issue 12.5) and gated assets, through
the Flask test client as each role signs in: versions side by side per language with
the forms that show them, a new version shown as a diff before it is published, the
asset list, upload, edit and archive; CSRF on every form, errors named in the page."""

from __future__ import annotations

import io
import re

from capture import definitions
from capture import service as capture_service
from consent.models import ConsentText
from leadvault import audit
from tests import factories
from tests.factories import uow
from widgets import service as widgets_service

PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
NEW = "Yes, send me the monthly newsletter. I can unsubscribe at any time."


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page
    )
    assert found, "no CSRF token"
    return found.group(1)


def _text(response) -> str:
    return response.get_data(as_text=True)


def test_overview_shows_versions_side_by_side_with_their_forms(app):
    form_id = factories.form(app, name="Footer newsletter")
    client, _ = factories.signed_in_client(app, "privacy")
    page = _text(client.get("/console/consent"))
    assert page.count("<h1>") == 1
    assert "Footer newsletter" in page and form_id in page
    assert 'lang="de"' in page and "Version 1" in page
    assert "/console/consent/newsletter/new" not in page  # privacy reads, never writes
    assert client.get("/console/consent/newsletter/new?language=en").status_code == 403
    detail = client.get("/console/consent/newsletter")
    assert detail.status_code == 200 and "Footer newsletter" in _text(detail)
    assert client.get("/console/consent/nope").status_code == 404
    viewer, _ = factories.signed_in_client(app, "viewer")
    assert viewer.get("/console/consent").status_code == 403


def test_new_version_is_previewed_as_a_diff_then_published(app):
    form_id = factories.form(app, name="Footer newsletter")
    client, _ = factories.signed_in_client(app, "marketing")
    url = "/console/consent/newsletter/new?language=en"
    form_page = _text(client.get(url))
    token = _csrf(form_page)
    with uow(app) as s:
        before = s.scalar(
            ConsentText.__table__.select()
            .with_only_columns(ConsentText.id)
            .where(ConsentText.purpose == "newsletter", ConsentText.language == "en")
            .order_by(ConsentText.version.desc())
        )

    preview = client.post(url, data={"csrf_token": token, "text": NEW, "adopt": "y"})
    assert preview.status_code == 200
    html = _text(preview)
    assert "<ins>" in html and "added:" in html  # named, not only coloured
    assert "Publish version 2" in html
    previewed = re.search(r'name="previewed" value="([0-9a-f]{64})"', html).group(1)

    # A text changed after the preview is shown again, not published.
    changed = client.post(
        url,
        data={
            "csrf_token": token,
            "text": NEW + " Really.",
            "adopt": "y",
            "step": "publish",
            "previewed": previewed,
        },
    )
    assert changed.status_code == 200 and "Publish version 2" in _text(changed)

    published = client.post(
        url,
        data={
            "csrf_token": token,
            "text": NEW,
            "adopt": "y",
            "step": "publish",
            "previewed": previewed,
        },
    )
    assert published.status_code == 303
    landing = _text(client.get(published.headers["Location"]))
    assert "Version 2" in landing and form_id in landing
    with uow(app) as s:
        form = capture_service.get_form(s, form_id)
        shown = s.get(ConsentText, form.consent_texts["en"]["newsletter"])
        assert shown.text == NEW and shown.version == 2
        assert s.get(ConsentText, before).version == 1
        assert len(audit.entries(s, audit.Filters(action="consent_text.published"))) == 1


def test_new_version_errors_are_named_and_csrf_is_required(app):
    client, _ = factories.signed_in_client(app, "marketing")
    url = "/console/consent/newsletter/new?language=de"
    token = _csrf(_text(client.get(url)))
    with uow(app) as s:
        current = s.scalars(
            ConsentText.__table__.select()
            .with_only_columns(ConsentText.text)
            .where(ConsentText.purpose == "newsletter", ConsentText.language == "de")
        ).first()
    empty = client.post(url, data={"csrf_token": token, "text": "  "})
    assert empty.status_code == 422 and 'aria-invalid="true"' in _text(empty)
    same = client.post(url, data={"csrf_token": token, "text": current})
    assert same.status_code == 422 and "same as the current version" in _text(same)
    assert client.post(url, data={"text": NEW}).status_code == 400
    client.post("/console/language", data={"csrf_token": token, "lang": "de"})
    german = client.post(url, data={"csrf_token": token, "text": current})
    assert "derselbe wie in der aktuellen Version" in _text(german)


def _upload(client, token, data=PDF, name="guide.pdf", **fields):
    body = {"csrf_token": token, "title_en": "Field guide", **fields}
    body["file"] = (io.BytesIO(data), name)
    return client.post("/console/assets", data=body, content_type="multipart/form-data")


def test_assets_upload_edit_archive(app):
    client, _ = factories.signed_in_client(app, "marketing")
    listing = _text(client.get("/console/assets"))
    assert listing.count("<h1>") == 1 and 'enctype="multipart/form-data"' in listing
    token = _csrf(listing)

    refused = _upload(client, token, b"MZ", "setup.exe")
    assert refused.status_code == 422 and "are not taken" in _text(refused)
    assert _upload(client, "", PDF).status_code in (400, 422)

    stored = _upload(client, token, title_de="Praxisleitfaden", description_en="Twelve pages.")
    assert stored.status_code == 303
    asset_url = stored.headers["Location"].split("?")[0]
    asset_id = asset_url.rsplit("/", 1)[1]
    page = _text(client.get(asset_url))
    assert "Praxisleitfaden" in page and "Twelve pages." in page
    assert "The asset is stored." in _text(client.get(f"{asset_url}?done=uploaded"))
    # A ?done= the page has no notice for shows none (it showed an empty notice box).
    assert 'class="notice" role="status"' not in _text(client.get(f"{asset_url}?done=x"))

    saved = client.post(
        asset_url, data={"csrf_token": token, "title_en": "Field guide 2027", "title_de": ""}
    )
    assert saved.status_code == 303
    with uow(app) as s:
        asset = widgets_service.get_asset(s, asset_id)
        assert asset.title == "Field guide 2027" and asset.title_in("de") == "Field guide 2027"
    missing_title = client.post(asset_url, data={"csrf_token": token, "title_en": ""})
    assert missing_title.status_code == 422 and "Please give the asset a title." in _text(
        missing_title
    )

    form_id = factories.form(
        app,
        name="Guide form",
        kind="whitepaper",
        purposes=[definitions.PurposeSpec("whitepaper", True)],
    )
    with uow(app) as s:
        widgets_service.attach(
            s, widgets_service.get_asset(s, asset_id), capture_service.get_form(s, form_id)
        )
    busy = client.post(f"{asset_url}/archive", data={"csrf_token": token})
    assert busy.status_code == 409 and form_id in _text(busy)
    with uow(app) as s:
        capture_service.get_form(s, form_id).active = False
    done = client.post(f"{asset_url}/archive", data={"csrf_token": token})
    assert done.status_code == 303
    assert asset_id in _text(client.get("/console/assets?archived=1"))
    assert asset_id not in _text(client.get("/console/assets"))
    with uow(app) as s:
        actions = [e.action for e in audit.entries(s, audit.Filters(object_id=asset_id))]
    assert sorted(actions) == ["asset.archived", "asset.texts_changed", "asset.uploaded"]

    viewer, _ = factories.signed_in_client(app, "viewer")
    assert viewer.get("/console/assets").status_code == 403
    privacy, _ = factories.signed_in_client(app, "privacy")
    assert privacy.get(asset_url).status_code == 403
