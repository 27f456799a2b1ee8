"""The click redirect in Debian's Chromium: with scripts the click is counted and the reader
lands on the target at once; without scripts one button press does the same. A plain
fetch (what a link scanner does) counts nothing."""

from __future__ import annotations

import datetime as dt
import http.server
import os
import threading
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from leadvault import clock
from nurture import tick
from nurture.models import Click
from tests.conftest import _smtp_config, deliver, free_port, screenshot, unique_email
from tests.nurture_helpers import THREE_STEPS, form, lead, links, load_sequence, uow

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api")
REPO = Path(__file__).resolve().parent.parent


def artifacts() -> Path:
    folder = Path(os.environ.get("LEADVAULT_ARTIFACTS") or REPO / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class _Target(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"<!doctype html><title>Target</title><h1>Target {self.path}</h1>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


def clicks(app) -> int:
    with uow(app) as s:
        return s.scalar(sa.select(sa.func.count()).select_from(Click))


def test_click_page_in_chromium_with_and_without_scripts(make_app, smtp_server, browser):
    target = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Target)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    site = f"http://127.0.0.1:{target.server_port}"
    port = free_port()
    app = make_app(smtp_url=_smtp_config(smtp_server.port), base_url=f"http://127.0.0.1:{port}")
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        clock.freeze(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC))
        sequence = THREE_STEPS.format(key="a").replace("https://www.example.com", site)
        load_sequence(app, sequence)
        lead(app, form(app), unique_email("browser"), purposes=("newsletter", "tracking"))
        with uow(app) as s:
            tick.run(s)
        deliver(app)
        mail = next(m for m in smtp_server.messages if str(m["Subject"]) == "a one")
        guide, faq = links(mail)
        clock.freeze(None)

        # A link scanner fetches (and follows redirects): nothing is counted.
        with urllib.request.urlopen(guide, timeout=10) as reply:
            assert reply.status == 200 and b"lv-click" in reply.read()
        assert clicks(app) == 0

        page = browser.new_page()
        try:
            page.goto(guide)
            page.wait_for_url(f"{site}/guide", timeout=10_000)
            assert page.locator("h1").inner_text() == "Target /guide"
            assert clicks(app) == 1

            quiet = browser.new_context(java_script_enabled=False, locale="en-GB")
            plain = quiet.new_page()
            plain.goto(faq)
            button = plain.get_by_role("button", name="Continue to 127.0.0.1")
            assert button.is_visible()
            screenshot(plain, artifacts() / "nurture-click-no-script.png")
            assert clicks(app) == 1
            button.click()
            plain.wait_for_url(f"{site}/faq", timeout=10_000)
            assert clicks(app) == 2
            quiet.close()
        finally:
            page.close()
    finally:
        server.shutdown()
        target.shutdown()
