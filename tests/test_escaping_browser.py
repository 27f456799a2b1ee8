"""In Debian's Chromium: a lead's markup does not navigate the salesperson's browser.

The lead's name and company hold ``<meta http-equiv="refresh">`` tags, one
pointing at a canary server on loopback. The salesperson opens the handoff
page (and the lead opens the preference center): the page must stay where
it is and the canary must see no request. Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

import http.server
import threading
from pathlib import Path
from typing import Any

import pytest

from consent import rights
from scoring import handoff
from tests.conftest import LiveServer, screenshot
from tests.hostile import MARKUP_NAME, contact_form, refresh_to, setup_sales, stored_lead, uow
from tests.test_widgets_browser import CHROMIUM, artifacts

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api")


class Canary:
    """A server that only records who came by."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        canary = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                canary.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "7")
                self.end_headers()
                self.wfile.write(b"PWNED!\n")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _path(link: str) -> str:
    return "/" + link.split("/", 3)[3]


def test_markup_in_a_lead_does_not_navigate_the_browser(app, browser):
    canary = Canary()
    setup_sales(app)
    form_id = contact_form(app)
    profile = {
        "first_name": MARKUP_NAME,
        "last_name": '<b>x</b><meta http-equiv="refresh" content="0;url=' + canary.url + '/name">',
        "company": refresh_to(canary.url + "/company"),
        "job_title": "Head of <i>Engineering</i>",
        "country": "DE",
        "company_size": "250-999",
    }
    lead = stored_lead(app, form_id, profile, {"page_url": canary.url + "/<b>page</b>"})
    with uow(app) as s:
        offered = handoff.open_handoff(s, lead.lead_id)
        assert offered is not None
        pages = {
            "handoff": _path(handoff.handoff_url(s, offered)),
            "preferences": _path(rights.prefs_url(s, lead.lead_id)),
            # Pages a link opens instead of acting (GET never changes state).
            "access": "/a/" + rights.single_use_token(s, rights.ACCESS, lead.lead_id),
        }
    folder: Path = artifacts()
    try:
        with LiveServer(app) as server:
            opened = []
            for name, path in pages.items():
                page = browser.new_page(viewport={"width": 900, "height": 1100})
                navigations: list[str] = []
                page.on(
                    "framenavigated",
                    lambda frame, page=page, seen=navigations: (
                        seen.append(frame.url) if frame == page.main_frame else None
                    ),
                )
                url = server.url + path
                response = page.goto(url)
                assert response is not None and response.status == 200
                opened.append((name, page, url, navigations))
            # A refresh of 0 s would fire at once; give the pages, all open, ample time.
            opened[-1][1].wait_for_timeout(2000)
            for name, page, url, navigations in opened:
                assert page.url == url, name
                assert navigations == [url], (name, navigations)
                text = page.inner_text("main")
                if name == "access":
                    assert page.get_by_role("button", name="Download").is_visible()
                else:
                    assert MARKUP_NAME in text, (name, text)
                assert page.locator("main meta").count() == 0, name
                screenshot(page, folder / f"hostile-lead-{name}.png", full_page=True)
                page.close()
        assert canary.paths == []
    finally:
        canary.close()
