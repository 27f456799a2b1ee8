"""Every console page, found from the app's own routes (issue 12.9 and its acceptance).

The test crawls the console as an owner and as a salesperson from its home page,
following every link (and frame) under /console and /admin, and fails when a GET
route under /console was never reached: a new page without a way to it, or one this
test cannot open, shows up here. Each page found is then opened in Debian's Chromium
in English and German at 1280 px (and in English on a phone): exactly one h1, the
page's language, no script or CSP error, axe-core without serious or critical
violations, and a screenshot in ``$LEADVAULT_ARTIFACTS/console/every/`` (git-ignored).
The sign-in (with the first-run hint, before any owner exists) and the TOTP step are
checked the same way, signed out.

The crawl runs on both databases. On PostgreSQL every page it found is then read in
both languages through the test client (200, exactly one h1, the page's language), and
Chromium's checks (axe, script and CSP errors, phone width, screenshots), which look at
the same templates and stylesheets, run once, on SQLite.
"""

from __future__ import annotations

import collections
import html
import re
from typing import Any
from urllib.parse import urlsplit

import pyotp
import pytest
from werkzeug.exceptions import HTTPException

from tests import factories
from tests.axe import axe_violations, require_axe
from tests.conftest import screenshot
from tests.test_console_browser import (
    CHROMIUM,
    DESKTOP,
    PHONE,
    TIMEOUT_MS,
    _world,
    served,  # noqa: F401  (the fixture)
    shots,
)
from tests.test_safe_methods import _asset

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]
LINK = re.compile(r'(?:href|src|action)="(/(?:console|admin)/[^"#]*)"')
# Not pages: the home redirects to the first page a role may open; these answer POSTs.
NOT_PAGES = {"console.home"}
MAX_VISITS = 400
PER_PAGE = 3  # pages of one route opened for their links (a link may show on some only)


def _crawl(app: Any, client: Any, start: str) -> dict[str, str]:
    """endpoint -> the first path that opened it (200, HTML), following links breadth first."""
    adapter = app.url_map.bind("localhost")
    queue, seen, found = [start], set(), {}
    opened: collections.Counter[str] = collections.Counter()
    while queue and len(seen) < MAX_VISITS:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        parts = urlsplit(path)
        try:
            endpoint, _args = adapter.match(parts.path, method="GET")
        except HTTPException:  # a POST-only route, a redirect, a 404: not a page to visit
            continue
        if (
            endpoint.endswith(".static")
            or opened[endpoint] >= PER_PAGE
            or endpoint == "admin_auth.sign_in_form"
        ):
            continue
        response = client.get(path, follow_redirects=True)
        if response.status_code != 200 or "text/html" not in response.content_type:
            continue
        if response.request.path != parts.path:  # redirected: the page it landed on
            path = response.request.full_path.rstrip("?")
            endpoint, _args = adapter.match(response.request.path, method="GET")
            if opened[endpoint] >= PER_PAGE:
                continue
        opened[endpoint] += 1
        found.setdefault(endpoint, path)
        for link in LINK.findall(response.get_data(as_text=True)):
            queue.append(html.unescape(link))
    return found


def _console_pages(app: Any) -> set[str]:
    return {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/console")
        and "GET" in (rule.methods or set())
        and not rule.endpoint.endswith(".static")
        and rule.endpoint not in NOT_PAGES
    }


H1 = re.compile(r"<h1[\s>]")
HTML_LANG = re.compile(r'<html[^>]*\slang="([^"]+)"')


def _check_markup(app: Any, found: dict[str, tuple[str, str]], roles: dict[str, str]) -> None:
    """Each page found, as its role, in both languages: 200, one h1, the page's language."""
    for role, email in roles.items():
        for lang in ("en", "de"):
            client = app.test_client()
            client.set_cookie("lv_console_lang", lang)
            factories.sign_in(client, email)
            for endpoint, (who, path) in sorted(found.items()):
                if who != role:
                    continue
                response = client.get(path)
                where = f"{role} {endpoint} ({lang}) {path}"
                assert response.status_code == 200, where
                page = response.get_data(as_text=True)
                assert len(H1.findall(page)) == 1, f"{where}: exactly one h1"
                language = HTML_LANG.search(page)
                assert language and language.group(1) == lang, where


class Visitor:
    """A browser context in one language (the console's language cookie)."""

    def __init__(self, browser: Any, url: str, lang: str, viewport: dict[str, int]) -> None:
        self.url, self.lang = url, lang
        self.context = browser.new_context(viewport=viewport)
        self.context.set_default_timeout(TIMEOUT_MS)
        self.context.add_cookies([{"name": "lv_console_lang", "value": lang, "url": url}])
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)

    def sign_in(self, email: str) -> None:
        self.page.goto(f"{self.url}/admin/sign-in")
        self.page.fill("#email", email)
        self.page.fill("#password", factories.STAFF_PASSWORD)
        self.page.click("main button[type=submit]")
        self.page.wait_for_load_state()

    def check(self, name: str, path: str | None = None) -> None:
        page = self.page
        if path is not None:
            response = page.goto(f"{self.url}{path}")
            assert response is not None and response.status == 200, f"{name}: {path}"
        where = f"{name} ({self.lang}) {page.url}"
        assert page.locator("h1").count() == 1, f"{where}: exactly one h1"
        assert page.locator("html").get_attribute("lang") == self.lang, where
        folder = shots() / "every"
        folder.mkdir(exist_ok=True)
        screenshot(page, folder / f"{name}-{self.lang}.png", full_page=True)
        violations = axe_violations(page)
        assert violations == [], f"{where}: {violations}"
        assert self.errors == [], f"{where}: {self.errors}"

    def close(self) -> None:
        self.context.close()


def test_every_console_page_in_both_languages(served, browser, backend):  # noqa: F811
    require_axe()
    app, url = served

    # Before any owner exists the sign-in page says how to make one.
    if backend == "postgresql":
        assert "leadvault users add" in app.test_client().get("/admin/sign-in").get_data(True)
    for lang in ("en", "de") if backend == "sqlite" else ():
        visitor = Visitor(browser, url, lang, DESKTOP)
        visitor.page.goto(f"{url}/admin/sign-in")
        assert "leadvault users add" in visitor.page.content()
        visitor.check("sign-in-first-run")
        visitor.close()

    world = _world(app)
    from scoring import rules, rulesets

    with factories.uow(app) as s:  # two rule versions: history, version and restore pages
        rulesets.activate(s, rules.example_text(), actor="user:1")
        rulesets.activate(s, rules.example_text().replace("C = 10", "C = 12"), actor="user:1")
    # An asset (its page), a form nobody has used yet (only such a form offers delete)
    # and a webhook endpoint with a test event queued (its page and delivery log).
    _asset(app)
    factories.form(app, name="Draft, never used")
    from export import webhooks

    with factories.uow(app) as s:
        endpoint, _secret = webhooks.create_endpoint(
            s, url="https://crm.example.com/hooks", resolve=False
        )
        webhooks.enqueue_test(s, endpoint)
    owner = factories.staff_user(app, "owner")[1]
    secret = pyotp.random_base32()
    with_totp = factories.staff_user(app, "marketing", totp_secret=secret)[1]
    roles = {"owner": owner, "sales": world["sales"]}

    found: dict[str, tuple[str, str]] = {}  # endpoint -> (role, path)
    for role, email in roles.items():
        client = app.test_client()
        factories.sign_in(client, email)
        for endpoint, path in _crawl(app, client, "/console/").items():
            found.setdefault(endpoint, (role, path))
    missing = _console_pages(app) - set(found)
    assert not missing, f"console pages no link leads to (or that did not open): {missing}"
    if backend == "postgresql":
        _check_markup(app, found, roles)
        client = app.test_client()
        totp = factories.sign_in(client, with_totp)
        assert totp.status_code == 302 and totp.headers["Location"].endswith("/admin/totp")
        assert len(H1.findall(client.get("/admin/totp").get_data(as_text=True))) == 1
        return

    for lang in ("en", "de"):
        signed_out = Visitor(browser, url, lang, DESKTOP)
        signed_out.check("sign-in", "/admin/sign-in")
        signed_out.page.fill("#email", with_totp)
        signed_out.page.fill("#password", factories.STAFF_PASSWORD)
        signed_out.page.click("main button[type=submit]")
        signed_out.page.wait_for_url(re.compile(r".*/admin/totp$"))
        signed_out.check("totp")
        signed_out.close()
        for role, email in roles.items():
            visitor = Visitor(browser, url, lang, DESKTOP)
            visitor.sign_in(email)
            for endpoint, (who, path) in sorted(found.items()):
                if who == role:
                    visitor.check(f"{role}-{endpoint.replace('.', '-')}", path)
            visitor.close()

    phone = Visitor(browser, url, "en", PHONE)
    phone.sign_in(owner)
    for endpoint, (who, path) in sorted(found.items()):
        if who == "owner":
            phone.check(f"phone-{endpoint.replace('.', '-')}", path)
    phone.close()
