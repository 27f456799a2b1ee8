"""Widgets without a browser: the loader's URL and caching, snippets, CORS,
gated whitepaper downloads and progressive profiling, through real SMTP."""

from __future__ import annotations

import datetime as dt
import gzip
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from capture.definitions import FieldSpec, PurposeSpec
from leadvault import clock, leads
from leadvault.app import runtime
from leadvault.cli import cli
from leadvault.db import unit_of_work
from tests import factories
from tests.conftest import deliver, make_form, render_token, unique_email

WIDGET_JS = Path(__file__).resolve().parent.parent / "widgets" / "static" / "widget.js"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
HOST = "https://www.example.com"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n% a field guide\n%%EOF\n"


def max_age(cache_control: str) -> int:
    match = re.search(r"max-age=(\d+)", cache_control)
    assert match, cache_control
    return int(match.group(1))


def path_of(link: str) -> str:
    return "/" + link.split("/", 3)[3]


def text_of(mail: Any) -> str:
    return mail.get_body(preferencelist=("plain",)).get_content()


def link_in(mail: Any, kind: str) -> str:
    """The one link of this kind (``c`` confirm, ``d`` download) in a mail's text part."""
    [link] = re.findall(rf"http://\S+/{kind}/\S+", text_of(mail))
    return link


def csrf_of(response: Any) -> str:
    match = CSRF.search(response.get_data(as_text=True))
    assert match, response.get_data(as_text=True)
    return match.group(1)


def cli_env(app: Any) -> dict[str, str]:
    settings = runtime(app).settings
    return {
        "LEADVAULT_INSTANCE": str(settings.instance),
        "LEADVAULT_DATABASE_URL": settings.database_url.replace("+psycopg", ""),
        "LEADVAULT_KEYRING": str(settings.keyring),
    }


def whitepaper_form(app: Any, tmp_path: Path, **kwargs: Any) -> tuple[str, str]:
    """A whitepaper form with an attached PDF; (form id, asset id)."""
    from capture import service as capture_service
    from widgets import service

    form_id = make_form(
        app,
        **{
            "name": "Field guide",
            "title": {"en": "Field guide"},  # what visitors see; the name is for staff
            "kind": "whitepaper",
            "purposes": [PurposeSpec("whitepaper", True)],
            "allowed_origins": [HOST],
            **kwargs,
        },
    )
    source = tmp_path / "field-guide.pdf"
    source.write_bytes(PDF)
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        asset = service.add_asset(s, source, title="Field guide")
        form = capture_service.get_form(s, form_id)
        assert form is not None
        service.attach(s, asset, form)
        return form_id, asset.public_id


def submit(app: Any, client: Any, form_id: str, email: str, **extra: Any) -> Any:
    payload = {
        "email": email,
        "consent": ["whitepaper"],
        "render_token": render_token(app, form_id),
        **extra,
    }
    response = client.post(f"/f/{form_id}", json=payload, headers={"Origin": HOST})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def download_count(app: Any, asset_id: str) -> int:
    from widgets import service

    with app.app_context(), runtime(app).session_factory() as s:
        asset = service.get_asset(s, asset_id)
        assert asset is not None
        return asset.download_count


def download_events(app: Any, email: str) -> int:
    """Downloads recorded as scoring events of the lead."""
    import sqlalchemy as sa

    from scoring.models import Event

    with app.app_context(), runtime(app).session_factory() as s:
        lead = leads.find_by_email(s, email)
        assert lead is not None
        query = sa.select(sa.func.count()).where(
            Event.lead_id == lead.id, Event.type == "asset_downloaded"
        )
        return s.scalar(query)


def fetch_download(client: Any, link: str) -> Any:
    """The download link shows a page (scanners stop there); its button fetches the file."""
    page = client.get(path_of(link))
    assert page.status_code == 200, page.get_data(as_text=True)
    assert page.headers.get("Content-Disposition") is None
    return client.post(path_of(link), data={"csrf_token": csrf_of(page)})


def confirm(client: Any, link: str) -> Any:
    page = client.get(path_of(link))
    assert page.status_code == 200
    done = client.post(path_of(link), data={"csrf_token": csrf_of(page)})
    assert done.status_code == 200, done.get_data(as_text=True)
    return done


# --- the loader -----------------------------------------------------------------


def test_loader_is_versioned_and_cached_for_long(app, client):
    from widgets.service import loader_version

    version = loader_version()
    current = client.get(f"/widgets/{version}/widget.js")
    assert current.status_code == 200
    assert current.get_data() == WIDGET_JS.read_bytes()
    assert "javascript" in current.mimetype
    cache = current.headers["Cache-Control"]
    assert "immutable" in cache
    assert "public" in cache
    assert max_age(cache) >= 365 * 24 * 3600
    css = client.get(f"/widgets/{version}/widget.css")
    assert css.status_code == 200
    assert "immutable" in css.headers["Cache-Control"]

    # A page that still embeds an old release gets today's file, but nobody may keep it.
    old = client.get("/widgets/000000000000/widget.js")
    assert old.status_code == 200
    assert "no-cache" in old.headers["Cache-Control"]
    assert "immutable" not in old.headers["Cache-Control"]
    assert client.get(f"/widgets/{version}/service.py").status_code == 404


def test_loader_is_small():
    size = len(gzip.compress(WIDGET_JS.read_bytes(), compresslevel=9))
    assert size < 8192, f"widget.js is {size} bytes gzipped"


def test_forms_show_prints_all_three_snippets(app):
    from widgets.service import loader_version

    form_id = make_form(app, allowed_origins=[HOST])
    base = runtime(app).settings.base_url
    result = CliRunner().invoke(cli, ["forms", "show", form_id], env=cli_env(app), obj=app)
    assert result.exit_code == 0, result.output
    out = result.output
    hosted = f"{base}/f/{form_id}"
    assert hosted in out
    assert f'<iframe src="{hosted}"' in out
    assert (
        f'<script src="{base}/widgets/{loader_version()}/widget.js" '
        f'data-leadvault-form="{form_id}" async></script>'
    ) in out
    assert f'<form method="post" action="{hosted}"' in out
    assert '<input type="email" name="email" required>' in out
    assert 'name="consent" value="newsletter"' in out
    assert 'name="website"' in out  # the honeypot travels with the plain form
    # Nothing a strict host CSP (no inline styles or scripts) would block.
    assert "style=" not in out
    assert "<script>" not in out


def test_config_cors_only_for_allowed_origins(app, client):
    form_id = make_form(app, allowed_origins=[HOST])
    allowed = client.get(f"/f/{form_id}/config", headers={"Origin": HOST})
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == HOST
    assert "Origin" in allowed.headers.get("Vary", "")
    assert allowed.get_json()["id"] == form_id

    foreign = client.get(f"/f/{form_id}/config", headers={"Origin": "https://evil.example.net"})
    assert "Access-Control-Allow-Origin" not in foreign.headers
    assert "Origin" in foreign.headers.get("Vary", "")

    # The preflight of the JSON POST.
    preflight_headers = {
        "Origin": HOST,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    preflight = client.options(f"/f/{form_id}", headers=preflight_headers)
    assert preflight.status_code in {200, 204}
    assert preflight.headers["Access-Control-Allow-Origin"] == HOST
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "content-type" in preflight.headers["Access-Control-Allow-Headers"].lower()
    refused = client.options(
        f"/f/{form_id}", headers={**preflight_headers, "Origin": "https://evil.example.net"}
    )
    assert "Access-Control-Allow-Origin" not in refused.headers

    # The POST itself is refused from a foreign origin, whatever CORS says.
    post = client.post(
        f"/f/{form_id}",
        json={
            "email": unique_email(),
            "consent": ["newsletter"],
            "render_token": render_token(app, form_id),
        },
        headers={"Origin": "https://evil.example.net"},
    )
    assert post.status_code == 403


def test_hosted_page_posting_to_itself_with_null_origin(app, client):
    """Our pages say no-referrer, so a browser posts the hosted form with ``Origin: null``;
    only the browser-set ``Sec-Fetch-Site: same-origin`` makes that our own page."""
    form_id = make_form(app, allowed_origins=[HOST])

    def post(**headers: str) -> Any:
        data = {
            "email": unique_email(),
            "consent": "newsletter",
            "render_token": render_token(app, form_id),
        }
        return client.post(f"/f/{form_id}", data=data, headers=headers)

    own = post(Origin="null", **{"Sec-Fetch-Site": "same-origin"})
    assert own.status_code == 200
    assert "Thank you!" in own.get_data(as_text=True)
    for site in ("cross-site", "same-site", "none"):
        assert post(Origin="null", **{"Sec-Fetch-Site": site}).status_code == 403
    assert post(Origin="null").status_code == 403
    assert (
        post(Origin="https://evil.example.net", **{"Sec-Fetch-Site": "same-origin"}).status_code
        == 403
    )


# --- gated whitepaper downloads --------------------------------------------------------


def test_whitepaper_optin_confirm_download(app, client, smtp_server, tmp_path):
    form_id, asset_id = whitepaper_form(app, tmp_path)
    email = unique_email()
    submit(app, client, form_id, email)
    assert deliver(app) == 1
    [optin] = smtp_server.wait_for(1)
    assert optin["To"] == email
    # The subject names the whitepaper asked for (and nothing to advertise).
    assert optin["Subject"] == "Please confirm your request for “Field guide”"

    done = confirm(client, link_in(optin, "c"))
    body = done.get_data(as_text=True)
    # The confirmation page offers the download at once.
    assert re.search(r'href="http://[^"]+/d/[^"]+"', body), body
    assert "Download “Field guide”" in body

    assert deliver(app) == 1
    asset_mail = smtp_server.wait_for(2)[1]
    assert asset_mail["To"] == email
    assert asset_mail["Subject"] == "Your download: Field guide"
    html = asset_mail.get_body(preferencelist=("html",)).get_content()
    link = link_in(asset_mail, "d")
    assert f'href="{link}"' in html

    got = fetch_download(client, link)
    assert got.status_code == 200
    disposition = got.headers["Content-Disposition"]
    assert disposition.startswith("attachment")
    assert "field-guide.pdf" in disposition
    assert got.get_data() == PDF
    assert got.headers["Cache-Control"] == "private, no-store"
    assert download_count(app, asset_id) == 1
    assert download_events(app, email) == 1

    # The link on the confirmation page downloads too, and is counted.
    [page_link] = re.findall(r'href="(http://[^"]+/d/[^"]+)"', body)
    again = fetch_download(client, page_link)
    assert again.status_code == 200
    assert again.get_data() == PDF
    assert download_count(app, asset_id) == 2
    assert download_events(app, email) == 2


def test_expired_download_link_offers_a_new_mail(app, client, smtp_server, tmp_path, monkeypatch):
    form_id, asset_id = whitepaper_form(app, tmp_path)
    submit(app, client, form_id, unique_email())
    deliver(app)
    confirm(client, link_in(smtp_server.wait_for(1)[0], "c"))
    deliver(app)
    link = link_in(smtp_server.wait_for(2)[1], "d")

    days = runtime(app).settings.optin_max_age_days + 1
    clock.freeze(clock.now() + dt.timedelta(days=days))
    expired = client.get(path_of(link))
    assert expired.status_code == 410
    body = expired.get_data(as_text=True)
    assert "This download link has expired" in body
    assert "Send me a new link" in body
    assert f'action="{path_of(link)}/resend"' in body
    assert expired.headers.get("Content-Disposition") is None
    assert PDF not in expired.get_data()
    assert download_count(app, asset_id) == 0

    # The resend form is CSRF-protected.
    assert client.post(path_of(link) + "/resend").status_code == 400
    resent = client.post(path_of(link) + "/resend", data={"csrf_token": csrf_of(expired)})
    assert resent.status_code == 200
    assert deliver(app) == 1
    fresh = smtp_server.wait_for(3)[2]
    assert fresh["Subject"] == "Your download: Field guide"
    new_link = link_in(fresh, "d")
    assert new_link != link
    got = fetch_download(client, new_link)
    assert got.status_code == 200
    assert got.get_data() == PDF
    assert download_count(app, asset_id) == 1


def test_confirmed_lead_gets_the_asset_mail_directly(app, client, smtp_server, tmp_path):
    form_id, asset_id = whitepaper_form(app, tmp_path)
    email = unique_email()
    submit(app, client, form_id, email)
    deliver(app)
    confirm(client, link_in(smtp_server.wait_for(1)[0], "c"))
    deliver(app)
    assert [m["Subject"] for m in smtp_server.wait_for(2)] == [
        "Please confirm your request for “Field guide”",
        "Your download: Field guide",
    ]

    submit(app, client, form_id, email)
    assert deliver(app) == 1
    mails = smtp_server.wait_for(3)
    assert len(mails) == 3
    assert mails[2]["Subject"] == "Your download: Field guide"
    assert mails[2]["To"] == email
    got = fetch_download(client, link_in(mails[2], "d"))
    assert got.status_code == 200
    assert got.get_data() == PDF
    assert download_count(app, asset_id) == 1


def test_progressive_profiling_asks_two_fields_at_a_time(app, client, smtp_server, tmp_path):
    form_id, _asset_id = whitepaper_form(
        app,
        tmp_path,
        fields=[FieldSpec("first_name", False)],
        follow_up_fields=["company", "job_title", "country"],
    )
    email = unique_email()
    submit(app, client, form_id, email, first_name="Ada")
    deliver(app)
    confirm(client, link_in(smtp_server.wait_for(1)[0], "c"))
    deliver(app)
    asset_mail = smtp_server.wait_for(2)[1]
    [more] = re.findall(rf"http://\S+/f/{form_id}/more/\S+", text_of(asset_mail))
    html = asset_mail.get_body(preferencelist=("html",)).get_content()
    assert f'href="{more}"' in html

    def asked(response: Any) -> list[str]:
        page = response.get_data(as_text=True)
        return list(re.findall(r'<input id="lv-[^"]+" name="([^"]+)"', page))

    first = client.get(path_of(more))
    assert first.status_code == 200
    assert first.headers["Cache-Control"] == "no-store"
    assert asked(first) == ["company", "job_title"]
    saved = client.post(
        path_of(more),
        data={
            "csrf_token": csrf_of(first),
            "company": "Analytical Engines Ltd",
            "job_title": "CTO",
        },
    )
    assert saved.status_code == 200
    assert "We saved your details." in saved.get_data(as_text=True)
    with app.app_context(), runtime(app).session_factory() as s:
        lead = leads.find_by_email(s, email)
        known = leads.attributes_of(s, lead)
    assert known["company"] == "Analytical Engines Ltd"
    assert known["job_title"] == "CTO"

    second = client.get(path_of(more))
    assert second.status_code == 200
    assert asked(second) == ["country"]
    client.post(path_of(more), data={"csrf_token": csrf_of(second), "country": "GB"})
    done = client.get(path_of(more))
    assert "We have everything we need." in done.get_data(as_text=True)


def test_profile_page_leaves_a_name_left_blank_alone(app, client, smtp_server, tmp_path):
    # A name the lead does not give is no refusal (the invisible-name check is for
    # names of joiners or marks alone, which it still refuses).
    form_id, _asset_id = whitepaper_form(app, tmp_path, follow_up_fields=["last_name", "company"])
    email = unique_email()
    submit(app, client, form_id, email)
    deliver(app)
    confirm(client, link_in(smtp_server.wait_for(1)[0], "c"))
    deliver(app)
    [more] = re.findall(rf"http://\S+/f/{form_id}/more/\S+", text_of(smtp_server.wait_for(2)[1]))
    page = client.get(path_of(more))
    invisible = client.post(
        path_of(more),
        data={"csrf_token": csrf_of(page), "last_name": "\u200d\u200d", "company": "ACME"},
    )
    assert invisible.status_code == 422
    assert "only invisible characters" in invisible.get_data(as_text=True)
    saved = client.post(
        path_of(more), data={"csrf_token": csrf_of(page), "last_name": "", "company": "ACME"}
    )
    assert saved.status_code == 200, saved.get_data(as_text=True)
    with app.app_context(), runtime(app).session_factory() as s:
        known = leads.attributes_of(s, leads.find_by_email(s, email))
    assert known.get("company") == "ACME"
    assert "last_name" not in known


@pytest.mark.parametrize("tampered", [True, False])
def test_tampered_download_and_profile_links(app, client, smtp_server, tmp_path, tampered):
    form_id, asset_id = whitepaper_form(app, tmp_path, follow_up_fields=["company"])
    submit(app, client, form_id, unique_email())
    deliver(app)
    confirm(client, link_in(smtp_server.wait_for(1)[0], "c"))
    deliver(app)
    mail = smtp_server.wait_for(2)[1]
    [more] = re.findall(rf"http://\S+/f/{form_id}/more/\S+", text_of(mail))
    download = link_in(mail, "d")
    if tampered:
        bad_download = factories.tampered(path_of(download))
        bad_more = factories.tampered(path_of(more))
    else:  # the other kind's token in each place
        bad_download = "/d/" + more.rsplit("/", 1)[1]
        bad_more = f"/f/{form_id}/more/" + download.rsplit("/", 1)[1]
    assert client.get(bad_download).status_code == 400
    assert client.get(bad_more).status_code == 400
    assert download_count(app, asset_id) == 0
