"""Staff sign-in in Debian's Chromium: set the password from the link `users add`
prints, turn on the authenticator app, sign out, sign in with password and code.
Screenshots of each page go to artifacts/."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pyotp
import pytest
from click.testing import CliRunner
from werkzeug.serving import make_server

from leadvault.cli import cli
from tests.conftest import _smtp_config, free_port, screenshot, unique_email

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api")
REPO = Path(__file__).resolve().parent.parent
PASSWORD = "four random words here"


def artifacts() -> Path:
    folder = Path(os.environ.get("LEADVAULT_ARTIFACTS") or REPO / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_sign_in_with_totp_in_chromium(make_app, smtp_server, browser):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = make_app(smtp_url=_smtp_config(smtp_server.port), base_url=base)
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    email = unique_email("owner")
    shots = artifacts()
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{base}/admin/sign-in")
        assert "users add you@example.com --role owner" in page.content()
        screenshot(page, shots / "admin-first-run.png", full_page=True)

        added = CliRunner().invoke(cli, ["users", "add", email, "--role", "owner"], obj=app)
        link = re.search(r"http\S+", added.output).group(0)
        page.goto(link)
        page.fill("#password", PASSWORD)
        page.fill("#confirm", PASSWORD)
        screenshot(page, shots / "admin-set-password.png", full_page=True)
        page.click("button:has-text('Save password')")
        assert page.locator("h1").inner_text() == "Your password is set"

        page.goto(f"{base}/admin/sign-in")
        page.fill("#email", email)
        page.fill("#password", "wrong password here")
        page.click("main form button[type=submit] >> nth=-1")
        assert "not right" in page.locator("[role=alert]").inner_text()
        screenshot(page, shots / "admin-sign-in-error.png", full_page=True)
        page.fill("#password", PASSWORD)
        page.click("main form button[type=submit] >> nth=-1")
        # Signed in, staff land on the console's home.
        assert page.locator("h1").inner_text() == "Dashboard"
        page.goto(f"{base}/admin/account")
        assert page.locator("h1").inner_text() == "Your account"

        page.click("text=Set up")
        secret = page.locator("figcaption code").inner_text()
        assert page.locator("figure svg path").count() == 1
        screenshot(page, shots / "admin-totp-setup.png", full_page=True)
        page.fill("#code", pyotp.TOTP(secret).now())
        page.click("button:has-text('Turn on')")
        assert page.locator("h1").inner_text() == "Dashboard"
        page.goto(f"{base}/admin/account")
        assert page.locator("h1").inner_text() == "Your account"
        screenshot(page, shots / "admin-account.png", full_page=True)

        page.click("text=Sign out")
        assert page.locator("h1").inner_text() == "Sign in"
        page.fill("#email", email)
        page.fill("#password", PASSWORD)
        page.click("main form button[type=submit] >> nth=-1")
        assert page.locator("h1").inner_text() == "Your code"
        screenshot(page, shots / "admin-totp.png", full_page=True)
        # The code of the next time step (the one used at set-up is spent).
        totp = pyotp.TOTP(secret)
        import time

        page.fill("#code", totp.at(time.time() + 30))
        page.click("main form button[type=submit] >> nth=-1")
        assert page.locator("h1").inner_text() == "Dashboard"

        phone = browser.new_page(viewport={"width": 390, "height": 800}, locale="de-DE")
        phone.goto(f"{base}/admin/sign-in")
        assert phone.locator("h1").inner_text() == "Anmelden"
        screenshot(phone, shots / "admin-sign-in-de-phone.png", full_page=True)
        phone.close()
        page.close()
    finally:
        server.shutdown()
