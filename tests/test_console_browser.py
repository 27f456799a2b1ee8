"""The console in Debian's Chromium, as each role would use it.

Leadvault is served on a loopback port; staff sign in through the real
sign-in form. Every console page is checked with axe-core in English and
German (no violation of impact serious or critical), at 1280 px and at phone
width, and screenshotted into ``$LEADVAULT_ARTIFACTS`` (default
``artifacts/console/``, git-ignored) for a reviewer to look at.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import factories
from tests.axe import axe_violations, require_axe
from tests.conftest import LiveServer, screenshot
from tests.test_widgets_browser import CHROMIUM, artifacts

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api")
TIMEOUT_MS = 15_000
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def shots() -> Path:
    folder = artifacts() / "console"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Staff:
    """A browser context signed in as one account, with CSP and script errors recorded."""

    def __init__(self, browser: Any, url: str, email: str, viewport: dict[str, int]) -> None:
        self.url = url
        self.context = browser.new_context(viewport=viewport)
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on(
            "console",
            lambda m: self.errors.append(m.text) if m.type == "error" else None,
        )
        self.page.goto(f"{url}/admin/sign-in")
        self.page.fill("#email", email)
        self.page.fill("#password", factories.STAFF_PASSWORD)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(re.compile(r".*/console/.*"))
        self.errors.clear()  # the sign-in pages are checked by the admin tests

    def open(self, path: str) -> Any:
        return self.page.goto(f"{self.url}{path}")

    def language(self, lang: str) -> None:
        label = "Deutsch" if lang == "de" else "English"
        button = self.page.locator("form.language button", has_text=label)
        if button.count():
            button.first.click()
            self.page.wait_for_load_state()

    def check(self, name: str, lang: str) -> None:
        """axe-core (serious/critical), one h1, no CSP or script errors; a screenshot."""
        page = self.page
        assert page.locator("h1").count() == 1, f"{name}: one h1"
        assert page.locator("html").get_attribute("lang") == lang
        screenshot(page, shots() / f"{name}-{lang}.png", full_page=True)
        violations = axe_violations(page)
        assert violations == [], f"{name} ({lang}): {violations}"
        assert self.errors == [], f"{name} ({lang}): {self.errors}"

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def served(make_app: Any, smtp_server: Any) -> Iterator[tuple[Any, str]]:
    from tests.conftest import _smtp_config

    app = make_app(smtp_url=_smtp_config(smtp_server.port))
    with LiveServer(app) as server:
        yield app, server.url


def _world(app: Any) -> dict[str, Any]:
    from scoring import stages
    from scoring.models import Handoff, HandoffStatus

    footer = factories.form(app, name="Footer newsletter")
    sidebar = factories.form(app, name="Whitepaper sidebar")
    made = [
        factories.lead(
            app,
            form_id=footer if i % 3 else sidebar,
            source={"utm_source": ("newsletter", "ads", "partner")[i % 3]},
            profile={"first_name": f"Ada{i}"} if i == 0 else None,
        )
        for i in range(9)
    ]
    with factories.uow(app) as s:
        for lead_id in made[:4]:
            state = stages.state_of(s, lead_id, for_update=True)
            stages.transition(s, state, "mql", cause_kind="rule", cause="test")
        state = stages.state_of(s, made[0], for_update=True)
        stages.transition(s, state, "sal", cause_kind="person", cause="test")
    sales_id, sales_email = factories.staff_user(app, "sales")
    with factories.uow(app) as s:
        from admin.models import User

        person = s.get(User, sales_id).salesperson_id
        s.add(
            Handoff(
                id=uuid.uuid4(),
                lead_id=made[1],
                person_id=person,
                routing_rule="test",
                status=HandoffStatus.OFFERED,
            )
        )
    return {"leads": made, "sales": sales_email}


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "phone"])
def test_every_console_page_as_each_role_in_both_languages(served, browser, viewport):
    require_axe()
    app, url = served
    world = _world(app)
    lead = world["leads"][0]
    suffix = "" if viewport is DESKTOP else "-phone"
    accounts = {role: factories.staff_user(app, role)[1] for role in ("owner", "viewer")}
    accounts["sales"] = world["sales"]
    pages = {
        "owner": [
            ("dashboard", "/console/dashboard"),
            ("dashboard-90", "/console/dashboard?days=90"),
            ("leads", "/console/leads"),
            ("leads-filtered", "/console/leads?stage=mql&sort=score"),
            ("lead", f"/console/leads/{lead}"),
            ("privacy", "/console/privacy?verify=1"),
            ("proof", f"/console/leads/{lead}/proof"),
        ],
        "viewer": [("dashboard", "/console/dashboard")],
        "sales": [("leads", "/console/leads"), ("lead", f"/console/leads/{world['leads'][1]}")],
    }
    for role, visits in pages.items():
        staff = Staff(browser, url, accounts[role], viewport)
        try:
            for lang in ("en", "de"):
                for name, path in visits:
                    staff.open(path)
                    staff.language(lang)
                    staff.check(f"{role}-{name}{suffix}", lang)
                if role == "owner":
                    staff.open(f"/console/leads/{lead}")
                    staff.language(lang)
                    staff.page.click("form[action$='/reveal'] button")
                    staff.page.wait_for_load_state()
                    assert "Ada0" in staff.page.content()
                    staff.check(f"owner-lead-revealed{suffix}", lang)
                    staff.language("en")
            if role == "viewer":
                html = staff.page.content()
                assert "/console/leads" not in html
        finally:
            staff.close()


def test_owner_filters_opens_changes_stage_and_sees_the_dashboard_move(served, browser):
    app, url = served
    world = _world(app)
    owner = factories.staff_user(app, "owner")[1]
    staff = Staff(browser, url, owner, DESKTOP)
    try:
        page = staff.page
        staff.open("/console/dashboard")
        sal_before = page.locator(".tiles li").nth(2).locator(".tile-value").inner_text()
        # The MQL number links into the list filtered by stage.
        page.locator(".tiles li").nth(1).locator("a").click()
        page.wait_for_url(re.compile(r".*/console/leads\?.*reached=mql.*"))
        rows = page.locator("table.leads tbody tr")
        assert rows.count() == 4
        page.select_option("#f-form", label="Whitepaper sidebar")
        page.click("form.filters button")
        page.wait_for_load_state()
        assert "form=" in page.url and "reached=mql" in page.url
        target = world["leads"][3]
        page.click(f"a[href$='/console/leads/{target}']")
        page.wait_for_url(re.compile(rf".*/console/leads/{target}$"))
        page.select_option("#stage-to", "sal")
        page.select_option("#stage-reason", "qualified")
        page.click("form[action$='/stage'] button")
        page.wait_for_url(re.compile(r".*changed=1$"))
        assert page.locator("[role=status]").count() >= 1
        staff.open("/console/dashboard")
        sal_after = page.locator(".tiles li").nth(2).locator(".tile-value").inner_text()
        assert int(sal_after) == int(sal_before) + 1
        assert staff.errors == []
    finally:
        staff.close()
