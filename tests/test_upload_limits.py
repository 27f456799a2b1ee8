"""Uploads larger than the app's body limit (LEADVAULT_MAX_BODY_BYTES, 64 KiB) but within
an asset's limit are taken through the console (its form checks its CSRF token itself)
and the API, by token or by the console's sign-in (whose CSRF check reads the body before
the view: the operation's declared limit is raised first). One over the asset's limit is
a 413 that names it: the console's page with the field marked, or problem+json."""

from __future__ import annotations

import io

import pytest

from tests import factories
from tests.test_console import csrf, text
from widgets import assets

PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
BIG = PDF + b"%" + b"0" * 200_000  # three times the app's 64 KiB
MULTIPART = "multipart/form-data"


def _fields(data: bytes, **extra: str) -> dict:
    return {"title_en": "Field guide", **extra, "file": (io.BytesIO(data), "guide.pdf")}


def test_console_takes_a_file_above_the_app_limit_and_names_the_asset_limit(app, monkeypatch):
    client, _ = factories.signed_in_client(app, "marketing")
    token = csrf(client, "/console/assets")
    stored = client.post(
        "/console/assets", data=_fields(BIG, csrf_token=token), content_type=MULTIPART
    )
    assert stored.status_code == 303, text(stored)[:500]
    monkeypatch.setattr(assets, "MAX_BYTES", 1024 * 1024)
    huge = PDF + b"0" * (2 * 1024 * 1024)  # over the asset limit and its form allowance
    barely = PDF + b"0" * (1024 * 1024)  # over the asset limit, within the allowance
    for data in (huge, barely):
        for lang in ("en", "de"):
            client.post("/console/language", data={"csrf_token": token, "lang": lang})
            refused = client.post(
                "/console/assets", data=_fields(data, csrf_token=token), content_type=MULTIPART
            )
            assert refused.status_code == 413
            page = text(refused)
            assert 'enctype="multipart/form-data"' in page  # the console's page, its form
            message = (
                "The file is larger than 1 MB."
                if lang == "en"
                else "Die Datei ist größer als 1 MB."
            )
            assert message in page and 'aria-invalid="true"' in page


@pytest.mark.parametrize("via", ["token", "console"])
def test_api_takes_a_file_above_the_app_limit_and_names_the_asset_limit(
    app, client, monkeypatch, via
):
    if via == "token":
        headers = {"Authorization": f"Bearer {factories.personal_token(app, 'marketing')}"}
    else:
        client, _ = factories.signed_in_client(app, "marketing")
        headers = {"X-CSRFToken": csrf(client, "/console/assets")}
    stored = client.post(
        "/api/v1/assets", data=_fields(BIG), headers=headers, content_type=MULTIPART
    )
    assert stored.status_code == 201, text(stored)
    monkeypatch.setattr(assets, "MAX_BYTES", 1024 * 1024)
    for data in (PDF + b"0" * (2 * 1024 * 1024), PDF + b"0" * (1024 * 1024)):
        refused = client.post(
            "/api/v1/assets",
            data=_fields(data),
            headers={**headers, "Accept-Language": "de"},
            content_type=MULTIPART,
        )
        assert refused.status_code == 413, text(refused)
        assert refused.mimetype == "application/problem+json"
        # The file and its limit, whether the view or the CSRF check read the body.
        problem = refused.get_json()
        assert problem["detail"] == "Die Datei ist größer als 1 MB.", problem
        assert problem["errors"] == {"file": ["Die Datei ist größer als 1 MB."]}


def test_a_limit_under_a_megabyte_is_named_in_kilobytes(app, monkeypatch):
    """With assets.MAX_BYTES under 1 MB the refusal and the field's hint read "0 MB"."""
    monkeypatch.setattr(assets, "MAX_BYTES", 100 * 1024)
    client, _ = factories.signed_in_client(app, "marketing")
    token = csrf(client, "/console/assets")
    assert "at most 100 KB." in text(client.get("/console/assets"))
    data = PDF + b"0" * (150 * 1024)
    refused = client.post(
        "/console/assets", data=_fields(data, csrf_token=token), content_type=MULTIPART
    )
    assert refused.status_code == 413
    assert "The file is larger than 100 KB." in text(refused)
    api = client.post(
        "/api/v1/assets",
        data=_fields(data),
        headers={"X-CSRFToken": token, "Accept-Language": "de"},
        content_type=MULTIPART,
    )
    assert api.status_code == 413, text(api)
    assert "Die Datei ist größer als 100 KB." in api.get_json()["detail"]
