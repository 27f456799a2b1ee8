"""The widgets in Debian's Chromium, driven by Playwright.

A host page is served from a second loopback origin (another port) with a
strict CSP that allows only Leadvault's origin. Leadvault itself is served on
its own port with a mail worker in the background and real SMTP (aiosmtpd).
Screenshots go to ``$LEADVAULT_ARTIFACTS`` (default: ``artifacts/`` in the
repository, git-ignored).
"""

from __future__ import annotations

import dataclasses
import http.server
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from capture.definitions import PurposeSpec
from leadvault.app import runtime
from leadvault.db import unit_of_work
from tests.conftest import (
    CHROMIUM,
    SmtpSink,
    _smtp_config,
    free_port,
    make_form,
    render_token,
    screenshot,
    unique_email,
)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
sync_api = pytest.importorskip("playwright.sync_api")

REPO = Path(__file__).resolve().parent.parent
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n% a field guide for browsers\n%%EOF\n"
TIMEOUT_MS = 10_000
THANKS_EN = "Thank you! Please check your inbox and confirm your email address."


def artifacts() -> Path:
    folder = Path(os.environ.get("LEADVAULT_ARTIFACTS") or REPO / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# --- servers -----------------------------------------------------------------------


class HostSite:
    """The website owner's page: a plain http.server on another loopback port."""

    def __init__(self, csp: str) -> None:
        self.pages: dict[str, str] = {}
        self.csp = csp
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                body = site.pages.get(path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Security-Policy", site.csp)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def page(self, body: str, *, lang: str = "en", path: str = "/index.html") -> str:
        self.pages[path] = (
            f'<!doctype html>\n<html lang="{lang}">\n<head><meta charset="utf-8">'
            f"<title>Host page</title></head>\n<body>\n<h1>Our product</h1>\n{body}\n"
            "</body>\n</html>\n"
        )
        return self.url + path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class ServedApp:
    """The app on exactly the port its base_url names (mail links must work)."""

    def __init__(self, app: Any, port: int) -> None:
        self.server = make_server("127.0.0.1", port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@dataclasses.dataclass
class Setup:
    app: Any
    url: str  # Leadvault's origin
    host: HostSite
    smtp: SmtpSink
    tmp_path: Path

    def whitepaper_form(self, *, origins: list[str] | None = None, **kwargs: Any) -> str:
        from capture import service as capture_service
        from widgets import service

        form_id = make_form(
            self.app,
            **{
                "name": "Field guide",
                "title": {"en": "Field guide"},  # what visitors see; the name is for staff
                "kind": "whitepaper",
                "purposes": [PurposeSpec("whitepaper", True)],
                "allowed_origins": [self.host.url] if origins is None else origins,
                **kwargs,
            },
        )
        source = self.tmp_path / "field-guide.pdf"
        source.write_bytes(PDF)
        with self.app.app_context(), unit_of_work(runtime(self.app).session_factory) as s:
            asset = service.add_asset(s, source, title="Field guide")
            form = capture_service.get_form(s, form_id)
            assert form is not None
            service.attach(s, asset, form)
        return form_id

    def loader_snippet(self, form_id: str) -> str:
        from widgets.service import loader_version

        return (
            f'<script src="{self.url}/widgets/{loader_version()}/widget.js" '
            f'data-leadvault-form="{form_id}" async></script>'
        )

    def snippet(self, form_id: str, label_start: str) -> str:
        """One of the snippets `leadvault forms show` prints."""
        from capture import service as capture_service

        with self.app.app_context(), unit_of_work(runtime(self.app).session_factory) as s:
            form = capture_service.get_form(s, form_id)
            assert form is not None
            shown = capture_service.embed_snippets(s, form, self.url)
        [found] = [snippet for label, snippet in shown if label.startswith(label_start)]
        return found

    def count(self, table: str) -> int:
        with runtime(self.app).engine.connect() as connection:
            return connection.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


@pytest.fixture
def setup(make_app: Any, smtp_server: SmtpSink, tmp_path: Path) -> Iterator[Setup]:
    from leadvault.worker import Worker

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    csp = (
        f"default-src 'none'; script-src {url}; style-src {url}; connect-src {url}; "
        f"frame-src {url}; form-action {url}; img-src 'none'"
    )
    host = HostSite(csp)
    app = make_app(
        base_url=url,
        smtp_url=_smtp_config(smtp_server.port),
        imprint_url=f"{url}/imprint",
        privacy_url=f"{url}/privacy",
    )
    served = ServedApp(app, port)
    stop = threading.Event()
    worker = threading.Thread(target=Worker(app).run, args=(stop,), daemon=True)
    worker.start()
    try:
        yield Setup(app=app, url=url, host=host, smtp=smtp_server, tmp_path=tmp_path)
    finally:
        stop.set()
        runtime(app).wake.set()
        # Still running, it would go on claiming from the session's database while the
        # next tests use it (5 s was short for a batch in flight on a loaded machine).
        worker.join(timeout=30)
        served.close()
        host.close()
        assert not worker.is_alive()


class Watched:
    """A browser context whose every request and CSP complaint is recorded."""

    def __init__(self, browser: Any, **options: Any) -> None:
        self.context = browser.new_context(accept_downloads=True, **options)
        self.context.set_default_timeout(TIMEOUT_MS)
        self.requests: list[str] = []
        self.csp_errors: list[str] = []
        self.page_errors: list[str] = []
        self.context.on("request", lambda request: self.requests.append(request.url))
        self.page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def _console(self, message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.csp_errors.append(message.text)

    def check(self, *origins: str) -> None:
        """No request left the host page and Leadvault; the CSP never had to step in."""
        assert self.requests, "no requests recorded"
        strangers = [url for url in self.requests if origin_of(url) not in origins]
        assert not strangers, strangers
        assert not self.csp_errors, self.csp_errors
        assert not self.page_errors, self.page_errors

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def watched(browser: Any) -> Iterator[Any]:
    opened: list[Watched] = []

    def open_(**options: Any) -> Watched:
        opened.append(Watched(browser, **options))
        return opened[-1]

    yield open_
    for context in opened:
        context.close()


def wait_for_mail(setup: Setup, count: int, subject: str) -> Any:
    mail = setup.smtp.wait_for(count)[count - 1]
    assert mail["Subject"] == subject
    return mail


def link_in(mail: Any, kind: str) -> str:
    text = mail.get_body(preferencelist=("plain",)).get_content()
    [link] = re.findall(rf"http://\S+/{kind}/\S+", text)
    return link


def confirm_and_download(page: Any, setup: Setup, email: str, mails_before: int = 0) -> None:
    """Opt-in mail → confirm page in the browser → download from the confirmation page."""
    optin = wait_for_mail(setup, mails_before + 1, "Please confirm your request for “Field guide”")
    assert optin["To"] == email
    page.goto(link_in(optin, "c"))
    page.get_by_role("button", name="Confirm").click()
    download_link = page.get_by_role("link", name="Download “Field guide”")
    sync_api.expect(download_link).to_be_visible()
    assert "/d/" in (download_link.get_attribute("href") or "")
    # The link opens a page (mail scanners stop there); its button downloads.
    download_link.click()
    button = page.get_by_role("button", name="Download")
    sync_api.expect(button).to_be_visible()
    screenshot(page, artifacts() / "download-page.png")
    with page.expect_download() as info:
        button.click()
    download = info.value
    assert download.suggested_filename == "field-guide.pdf"
    assert Path(download.path()).read_bytes() == PDF
    # And the mail with the download link arrives as well.
    asset_mail = wait_for_mail(setup, mails_before + 2, "Your download: Field guide")
    assert asset_mail["To"] == email


# --- the tests -------------------------------------------------------------------------


@pytest.mark.browser
def test_loader_under_strict_csp_submit_confirm_download(setup, watched):
    form_id = setup.whitepaper_form()
    browser = watched()
    page = browser.page
    page.goto(setup.host.page(setup.loader_snippet(form_id)))

    email_input = page.locator("input[type=email]")
    sync_api.expect(email_input).to_be_visible()
    # Rendered inside a shadow root, not into the host page's own DOM.
    assert page.evaluate("document.querySelectorAll('input').length") == 0
    assert page.evaluate(
        "document.querySelector('.leadvault-form').shadowRoot.querySelector('form') !== null"
    )
    # Labels are tied to their inputs.
    sync_api.expect(page.get_by_label("Email address")).to_have_count(1)
    # The stylesheet inside the shadow root was applied (allowed by style-src).
    sync_api.expect(page.locator("button[type=submit]")).to_have_css(
        "background-color", "rgb(11, 92, 173)"
    )
    email = unique_email("browser")
    email_input.fill(email)
    page.locator("input[type=checkbox][value=whitepaper]").check()
    folder = artifacts()
    page.locator(".leadvault-form").screenshot(path=str(folder / "widget-form.png"))
    page.get_by_role("button", name="Submit").click()
    thanks = page.locator(".lv-thanks")
    sync_api.expect(thanks).to_have_text(THANKS_EN)
    sync_api.expect(thanks).to_be_focused()
    screenshot(page, folder / "widget-thanks.png")
    assert (folder / "widget-form.png").stat().st_size > 0
    assert (folder / "widget-thanks.png").stat().st_size > 0

    confirm_and_download(page, setup, email)
    browser.check(setup.host.url, setup.url)
    assert any(url.startswith(f"{setup.url}/widgets/") for url in browser.requests)
    assert f"{setup.url}/f/{form_id}" in browser.requests


@pytest.mark.browser
def test_iframe_snippet(setup, watched):
    form_id = setup.whitepaper_form()
    iframe = setup.snippet(form_id, "iframe")
    browser = watched()
    page = browser.page
    page.goto(setup.host.page(iframe))
    # Sized by attributes: the host's CSP would block a style attribute.
    box = page.locator("iframe").bounding_box()
    assert box and box["height"] >= 500 and box["width"] > 600, box
    frame = page.frame_locator("iframe")
    email = unique_email("frame")
    frame.locator("input[type=email]").fill(email)
    frame.locator("input[type=checkbox][value=whitepaper]").check()
    frame.get_by_role("button", name="Submit").click()
    sync_api.expect(frame.get_by_role("status")).to_have_text(THANKS_EN)
    confirm_and_download(page, setup, email)
    browser.check(setup.host.url, setup.url)


@pytest.mark.browser
def test_no_javascript_snippet_two_steps(setup, watched):
    form_id = setup.whitepaper_form()
    html = setup.snippet(form_id, "html")
    assert "<script" not in html
    browser = watched(java_script_enabled=False)
    page = browser.page
    page.goto(setup.host.page(html))
    email = unique_email("nojs")
    page.locator("input[type=email]").fill(email)
    page.locator("input[type=checkbox][value=whitepaper]").check()
    page.get_by_role("button", name="Submit").click()

    # Leadvault shows the filled hosted form and asks, without an error, to send it once more.
    page.wait_for_url(f"{setup.url}/f/{form_id}")
    sync_api.expect(page.get_by_role("status")).to_contain_text(
        "One more step: please check your details and send the form once more."
    )
    sync_api.expect(page.get_by_role("alert")).to_have_count(0)
    sync_api.expect(page.locator(".lv-error, .lv-summary")).to_have_count(0)
    sync_api.expect(page.locator("input[type=email]")).to_have_value(email)
    sync_api.expect(page.locator("input[type=checkbox][value=whitepaper]")).to_be_checked()
    assert setup.count("inbox") == 0
    page.get_by_role("button", name="Submit").click()
    sync_api.expect(page.get_by_role("status")).to_have_text(THANKS_EN)
    # The way back: the browser told the first step the host's origin, the second kept it.
    back = page.get_by_role("link", name="Back to 127.0.0.1")
    sync_api.expect(back).to_have_attribute("href", f"{setup.host.url}/")
    confirm_and_download(page, setup, email)
    browser.check(setup.host.url, setup.url)


@pytest.mark.browser
def test_origin_not_allowed_cannot_submit(setup, watched):
    form_id = setup.whitepaper_form(origins=["https://www.example.com"])
    browser = watched()
    page = browser.page
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.goto(setup.host.page(setup.loader_snippet(form_id)))
    sync_api.expect(page.locator(".lv-error")).to_have_text("The form could not be loaded.")
    sync_api.expect(page.locator("input[type=email]")).to_have_count(0)
    # Leadvault answers the config request without CORS headers for this origin,
    # so the browser fails the request and keeps the answer from the page.
    assert [url for url in failed if "/config" in url], failed

    token = render_token(setup.app, form_id)
    endpoint = f"{setup.url}/f/{form_id}"
    responses: list[Any] = []
    page.on("response", lambda response: responses.append(response))
    # A JSON POST needs a preflight, which Leadvault does not grant to this origin.
    outcome = page.evaluate(
        """async ([endpoint, token, email]) => {
          try {
            const response = await fetch(endpoint, {method: "POST",
              headers: {"Content-Type": "application/json"},
              body: JSON.stringify({email, consent: ["whitepaper"], render_token: token})});
            return "status " + response.status;
          } catch (error) { return error.name; }
        }""",
        [endpoint, token, unique_email("cors")],
    )
    assert outcome == "TypeError"
    # A "simple" cross-origin POST skips the preflight; the Origin check refuses it.
    simple = page.evaluate(
        """async ([endpoint, token, email]) => {
          const body = new URLSearchParams({email, consent: "whitepaper", render_token: token});
          try {
            const response = await fetch(endpoint, {method: "POST", mode: "no-cors", body});
            return response.type;
          } catch (error) { return error.name; }
        }""",
        [endpoint, token, unique_email("simple")],
    )
    assert simple == "opaque"  # the page learns nothing
    posts = [(r.request.method, r.status) for r in responses if r.url == endpoint]
    # The preflight is refused (no CORS headers), the simple POST gets a 403.
    assert ("POST", 403) in posts, posts
    assert not any(method == "POST" and status < 400 for method, status in posts), posts
    time.sleep(0.3)  # give the background worker a chance to (wrongly) act
    assert setup.count("inbox") == 0
    assert setup.count("leads") == 0
    assert setup.smtp.messages == []
    browser.check(setup.host.url, setup.url)


@pytest.mark.browser
def test_german_host_page_shows_german_errors(setup, watched):
    form_id = setup.whitepaper_form()
    browser = watched()
    page = browser.page
    page.goto(setup.host.page(setup.loader_snippet(form_id), lang="de"))
    email_input = page.get_by_label("E-Mail-Adresse")
    sync_api.expect(email_input).to_be_visible()
    email_input.fill("kein-gueltiger-name@")
    page.locator("input[type=checkbox][value=whitepaper]").check()
    page.get_by_role("button", name="Absenden").click()

    error = page.locator(".lv-error:not([hidden])")
    sync_api.expect(error).to_have_count(1)
    sync_api.expect(error).to_be_visible()
    sync_api.expect(error).to_contain_text("Bitte geben Sie eine gültige E-Mail-Adresse ein")
    sync_api.expect(email_input).to_have_attribute("aria-invalid", "true")
    sync_api.expect(email_input).to_be_focused()
    error_id = error.get_attribute("id")
    assert error_id
    sync_api.expect(email_input).to_have_attribute("aria-describedby", error_id)
    live = page.locator("[aria-live]")
    sync_api.expect(live).to_have_text("Einige Felder brauchen Ihre Aufmerksamkeit.")
    page.locator(".leadvault-form").screenshot(path=str(artifacts() / "widget-error-de.png"))
    assert setup.count("inbox") == 0
    browser.check(setup.host.url, setup.url)


@pytest.mark.browser
def test_page_language_we_lack_uses_the_browsers(setup, watched):
    """A French host page, a German browser: the loader passes the page's tag,
    Leadvault lacks French and takes the browser's Accept-Language (German)."""
    form_id = setup.whitepaper_form()
    browser = watched(locale="de-DE")
    page = browser.page
    page.goto(setup.host.page(setup.loader_snippet(form_id), lang="fr"))
    sync_api.expect(page.get_by_label("E-Mail-Adresse")).to_be_visible()
    sync_api.expect(page.get_by_role("button", name="Absenden")).to_be_visible()
    browser.check(setup.host.url, setup.url)


@pytest.mark.browser
def test_keyboard_only(setup, watched):
    form_id = setup.whitepaper_form(fields=[])
    browser = watched()
    page = browser.page
    page.goto(setup.host.page(setup.loader_snippet(form_id)))
    sync_api.expect(page.locator("input[type=email]")).to_be_visible()

    def focused() -> str:
        return page.evaluate(
            """() => {
              let el = document.activeElement;
              while (el && el.shadowRoot && el.shadowRoot.activeElement) {
                el = el.shadowRoot.activeElement;
              }
              return el ? (el.type || el.tagName.toLowerCase()) : "";
            }"""
        )

    page.keyboard.press("Tab")
    assert focused() == "email"
    email = unique_email("keys")
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    assert focused() == "checkbox"
    page.keyboard.press("Space")
    sync_api.expect(page.locator("input[type=checkbox][value=whitepaper]")).to_be_checked()
    page.keyboard.press("Tab")
    assert focused() == "submit"
    page.keyboard.press("Enter")
    sync_api.expect(page.locator(".lv-thanks")).to_have_text(THANKS_EN)
    sync_api.expect(page.locator(".lv-thanks")).to_be_focused()
    optin = wait_for_mail(setup, 1, "Please confirm your request for “Field guide”")
    assert optin["To"] == email
    browser.check(setup.host.url, setup.url)


@pytest.mark.browser
def test_widget_is_themable_and_isolated(setup, watched):
    """Host styles do not leak in, custom properties do; ours do not leak out."""
    form_id = setup.whitepaper_form()
    browser = watched()
    page = browser.page
    body = setup.loader_snippet(form_id) + "\n<button id=host-button>Host button</button>"
    page.goto(setup.host.page(body))
    submit = page.locator(".leadvault-form button[type=submit]")
    sync_api.expect(submit).to_have_css("background-color", "rgb(11, 92, 173)")
    host_button = page.locator("#host-button")
    background = "b => getComputedStyle(b).backgroundColor"
    assert host_button.evaluate(background) != "rgb(11, 92, 173)"  # ours stay inside

    # The host's own aggressive rules (a constructed sheet: the CSP forbids inline
    # styles) restyle the host's button but not the widget's.
    page.evaluate(
        """() => {
          const sheet = new CSSStyleSheet();
          sheet.replaceSync("button { background: rgb(0, 128, 0) !important; }"
            + " .leadvault-form { --leadvault-accent: rgb(200, 0, 0); }");
          document.adoptedStyleSheets = [sheet];
        }"""
    )
    sync_api.expect(host_button).to_have_css("background-color", "rgb(0, 128, 0)")
    # A custom property set by the host reaches inside the shadow root: the theme.
    sync_api.expect(submit).to_have_css("background-color", "rgb(200, 0, 0)")
    browser.check(setup.host.url, setup.url)
