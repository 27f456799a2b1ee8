"""Gated assets as staff manage them (issue 11.4 "assets", issue 12): upload with size
and type limits, title and description per language, archive; the same service
behind the command line, the admin API and the console."""

from __future__ import annotations

import io
import stat

from click.testing import CliRunner

from capture.definitions import PurposeSpec
from leadvault import audit
from leadvault.app import runtime
from leadvault.cli import cli
from tests import factories
from tests.factories import uow
from widgets import assets, service

PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


def _token(app, role="marketing"):
    return {"Authorization": f"Bearer {factories.personal_token(app, role)}"}


def _upload(client, headers, data=PDF, filename="guide.pdf", **texts):
    fields = {"title_en": "Field guide", **texts, "file": (io.BytesIO(data), filename)}
    return client.post(
        "/api/v1/assets", data=fields, headers=headers, content_type="multipart/form-data"
    )


def _whitepaper_form(app):
    return factories.form(
        app, name="Guide", kind="whitepaper", purposes=[PurposeSpec("whitepaper", True)]
    )


def test_upload_stores_a_private_file_with_texts_per_language(app, client):
    response = _upload(
        client,
        _token(app),
        title_de="Praxisleitfaden",
        description_en="Twelve pages.",
        description_de="Zwölf Seiten.",
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert body["titles"] == {"en": "Field guide", "de": "Praxisleitfaden"}
    assert body["descriptions"]["de"] == "Zwölf Seiten."
    assert body["content_type"] == "application/pdf" and body["size"] == len(PDF)
    with uow(app) as s:
        asset = service.get_asset(s, body["id"])
        path = service.asset_file(s, asset)
        assert asset.title_in("de") == "Praxisleitfaden" and asset.title_in("en") == "Field guide"
    assert path.read_bytes() == PDF
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with uow(app) as s:
        assert len(audit.entries(s, audit.Filters(action="asset.uploaded"))) == 1
    listed = client.get("/api/v1/assets", headers=_token(app, "owner")).get_json()
    assert body["id"] in [row["id"] for row in listed]


def test_upload_refuses_wrong_types_and_large_files_naming_the_problem(app, client, monkeypatch):
    headers = _token(app)
    folder = runtime(app).settings.assets_folder

    def refused(response, field, fragment, status=422):
        assert response.status_code == status, response.get_data(as_text=True)
        assert response.mimetype == "application/problem+json"
        assert fragment in " ".join(response.get_json()["errors"][field])

    refused(_upload(client, headers, b"MZ\x90\x00", "setup.exe"), "file", "not taken")
    refused(_upload(client, headers, b"MZ\x90\x00 not a pdf", "guide.pdf"), "file", ".pdf")
    refused(_upload(client, headers, b"", "guide.pdf"), "file", "empty")
    refused(_upload(client, headers, title_en="   "), "title_en", "")
    monkeypatch.setattr(assets, "MAX_BYTES", 1000)
    refused(_upload(client, headers, PDF + b"0" * 2000), "file", "larger than", 413)
    assert not list(folder.glob(".upload-*")), "a refused upload left a file"
    no_file = client.post(
        "/api/v1/assets",
        data={"title_en": "x"},
        headers=headers,
        content_type="multipart/form-data",
    )
    refused(no_file, "file", "Choose a file")
    as_json = client.post("/api/v1/assets", json={"title_en": "x"}, headers=headers)
    assert as_json.status_code == 415
    viewer = _upload(client, _token(app, "viewer"))
    assert viewer.status_code == 403
    assert client.get("/api/v1/assets", headers=_token(app, "privacy")).status_code == 403


def test_edit_texts_and_archive(app, client):
    headers = _token(app)
    asset_id = _upload(client, headers).get_json()["id"]
    changed = client.put(
        f"/api/v1/assets/{asset_id}/texts",
        json={"title_en": "Field guide 2027", "title_de": "Leitfaden 2027"},
        headers=headers,
    )
    assert changed.status_code == 200
    assert changed.get_json()["title"] == "Field guide 2027"
    assert changed.get_json()["titles"]["de"] == "Leitfaden 2027"
    bad = client.put(f"/api/v1/assets/{asset_id}/texts", json={"title_de": "x"}, headers=headers)
    assert bad.status_code == 422 and "title_en" in bad.get_json()["errors"]

    # Archiving is refused while an active form delivers the asset, named in the answer.
    form_id = _whitepaper_form(app)
    with uow(app) as s:
        from capture import service as capture_service

        service.attach(s, service.get_asset(s, asset_id), capture_service.get_form(s, form_id))
    busy = client.post(f"/api/v1/assets/{asset_id}/archive", headers=headers)
    assert busy.status_code == 409 and form_id in busy.get_json()["detail"]
    with uow(app) as s:
        capture_service.get_form(s, form_id).active = False
    done = client.post(f"/api/v1/assets/{asset_id}/archive", headers=headers)
    assert done.status_code == 200 and done.get_json()["archived_at"]
    live = client.get("/api/v1/assets", headers=headers).get_json()
    archived = client.get("/api/v1/assets?archived=true", headers=headers).get_json()
    assert asset_id not in [a["id"] for a in live]
    assert asset_id in [a["id"] for a in archived]
    with uow(app) as s:
        asset = service.get_asset(s, asset_id)
        try:
            service.attach(s, asset, capture_service.get_form(s, _whitepaper_form(app)))
        except service.AssetError as exc:
            assert "archived" in str(exc)
        else:
            raise AssertionError("an archived asset was attached")
    assert client.get("/api/v1/assets/nope", headers=headers).status_code == 404


def test_mail_and_links_use_the_title_in_the_leads_language(app, tmp_path):
    source = tmp_path / "guide.pdf"
    source.write_bytes(PDF)
    with uow(app) as s:
        asset = service.add_asset(s, source, title="Field guide")
        assets.update_texts(
            s, asset, assets.AssetTexts(titles={"en": "Field guide", "de": "Praxisleitfaden"})
        )
        assert asset.title_in("de") == "Praxisleitfaden"
        assert asset.title_in("fr") == "Field guide"


def test_cli_add_list_archive(app, tmp_path):
    source = tmp_path / "guide.pdf"
    source.write_bytes(PDF)
    runner = CliRunner()
    added = runner.invoke(cli, ["assets", "add", str(source), "--title", "Guide"], obj=app)
    assert added.exit_code == 0, added.output
    asset_id = added.output.split()[1]
    assert asset_id in runner.invoke(cli, ["assets", "list"], obj=app).output
    archived = runner.invoke(cli, ["assets", "archive", asset_id], obj=app)
    assert archived.exit_code == 0, archived.output
    assert asset_id not in runner.invoke(cli, ["assets", "list"], obj=app).output
    exe = tmp_path / "setup.exe"
    exe.write_bytes(b"MZ")
    refused = runner.invoke(cli, ["assets", "add", str(exe), "--title", "x"], obj=app)
    assert refused.exit_code != 0 and "not taken" in refused.output


def test_cli_add_refuses_a_file_it_cannot_read_without_a_traceback(app, tmp_path):
    runner = CliRunner()
    long_name = str(tmp_path / ("a" * 300 + ".pdf"))  # longer than a file name may be
    refused = runner.invoke(cli, ["assets", "add", long_name, "--title", "x"], obj=app)
    assert refused.exit_code == 1, refused.output
    assert refused.output.startswith("Error: cannot read ") and "too long" in refused.output
    assert not isinstance(refused.exception, OSError)
    missing = runner.invoke(
        cli, ["assets", "add", str(tmp_path / "no.pdf"), "--title", "x"], obj=app
    )
    assert missing.exit_code == 1 and "is not a readable file" in missing.output
