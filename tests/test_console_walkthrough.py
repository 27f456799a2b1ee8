"""Issue 12's acceptance walk-through in Debian's Chromium, end to end.

An owner creates a form in the console and copies its JavaScript snippet onto a page of
a second loopback origin (the website, under a strict CSP); a visitor submits there and
confirms through the opt-in mail (real worker, real SMTP over loopback); the lead shows
in the console's list, the owner filters it by form and stage, opens it and shows its
personal data (one audit entry), changes its stage and sees the dashboard count move. A
``sales`` account sees only the lead handed to it; a ``viewer`` sees the charts and no
personal data. axe-core on every page visited, screenshots in both languages.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from leadvault.models import AuditEntry
from tests import factories
from tests.axe import require_axe
from tests.test_console_browser import DESKTOP, Staff
from tests.test_widgets_browser import (  # noqa: F401 (fixtures)
    CHROMIUM,
    Setup,
    link_in,
    setup,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api")
FORM_NAME = "Walk-through newsletter"


def _audit_count(app: Any, action: str) -> int:
    with factories.uow(app) as s:
        return s.scalar(
            sa.select(sa.func.count()).select_from(AuditEntry).where(AuditEntry.action == action)
        )


def _owner_creates_the_form(owner: Staff, site: str) -> str:
    page = owner.page
    owner.open("/console/forms/new")
    page.fill("#name", FORM_NAME)
    page.fill("#title_en", "Our monthly letter")
    page.fill("#title_de", "Unser Monatsbrief")
    page.select_option("#field_first_name", "required")
    page.fill("#allowed_origins", site)
    page.click("form.editor button")
    page.wait_for_url(re.compile(r".*/console/forms/[^/]+\?done=created$"))
    owner.check("walkthrough-form-created", "en")
    return page.get_by_label("JavaScript loader").input_value()


def _visitor_submits_and_confirms(browser: Any, setup: Setup, snippet: str) -> str:  # noqa: F811
    email = factories.unique_email("walker")
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(setup.host.page(snippet))
        page.locator("input[type=email]").fill(email)
        page.get_by_label("First name").fill("Wanda")
        page.locator("input[type=checkbox][value=newsletter]").check()
        page.get_by_role("button", name="Submit").click()
        sync_api.expect(page.locator(".lv-thanks")).to_be_visible()
        optin = setup.smtp.wait_for(1)[0]
        assert optin["To"] == email
        page.goto(link_in(optin, "c"))
        page.get_by_role("button", name="Confirm").click()
        page.wait_for_load_state()
    finally:
        context.close()
    return email


def _tile(page: Any, index: int) -> int:
    return int(page.locator(".tiles li").nth(index).locator(".tile-value").inner_text())


def test_owner_visitor_sales_viewer_walk_through(setup, browser):  # noqa: F811
    require_axe()
    app = setup.app
    owner_email = factories.staff_user(app, "owner")[1]
    owner = Staff(browser, setup.url, owner_email, DESKTOP)
    try:
        snippet = _owner_creates_the_form(owner, setup.host.url)
        assert 'data-leadvault-form="' in snippet
        email = _visitor_submits_and_confirms(browser, setup, snippet)

        page = owner.page
        owner.open("/console/dashboard")
        mql_before = _tile(page, 1)
        owner.check("walkthrough-dashboard-before", "en")
        # The lead shows in the list (the worker stored it), then the filters narrow to it.
        owner.open("/console/leads")
        rows = page.locator("table.leads tbody tr a[href*='/console/leads/']")
        assert rows.count() == 1
        assert FORM_NAME in page.locator("table.leads tbody tr").first.inner_text()
        page.select_option("#f-form", label=FORM_NAME)
        page.select_option("#f-stage", "new")
        page.click("form.filters button")
        page.wait_for_load_state()
        assert "form=" in page.url and "stage=new" in page.url
        assert rows.count() == 1
        owner.check("walkthrough-leads-filtered", "en")
        page.select_option("#f-stage", "mql")
        page.click("form.filters button")
        page.wait_for_load_state()
        assert rows.count() == 0
        page.select_option("#f-stage", "new")
        page.click("form.filters button")
        page.wait_for_load_state()
        # Open the lead and show its personal data: exactly one audit entry.
        page.locator("table.leads tbody tr a").first.click()
        page.wait_for_url(re.compile(r".*/console/leads/[0-9a-f-]{36}$"))
        lead_id = uuid.UUID(page.url.rsplit("/", 1)[1])
        assert email not in page.content()
        revealed_before = _audit_count(app, "lead.revealed")
        page.click("form[action$='/reveal'] button")
        page.wait_for_load_state()
        assert email in page.content() and "Wanda" in page.content()
        assert _audit_count(app, "lead.revealed") == revealed_before + 1
        owner.check("walkthrough-lead-revealed", "en")
        # Change the stage with a reason; the dashboard's MQL count moves.
        owner.open(f"/console/leads/{lead_id}")
        page.select_option("#stage-to", "mql")
        page.select_option("#stage-reason", "qualified")
        page.click("form[action$='/stage'] button")
        page.wait_for_url(re.compile(r".*changed=1$"))
        owner.open("/console/dashboard")
        assert _tile(page, 1) == mql_before + 1
        owner.language("de")
        owner.check("walkthrough-dashboard-after", "de")
        owner.open("/console/privacy")
        # The trail names actions by their label (here German); the code is the title.
        assert page.locator('span[title="lead.revealed"]').count() >= 1
        assert owner.errors == []
    finally:
        owner.close()

    # A salesperson sees the lead handed to them, not the visitor's.
    from admin.models import User
    from scoring.models import Handoff, HandoffStatus

    sales_id, sales_email = factories.staff_user(app, "sales")
    theirs = factories.lead(app, profile={"first_name": "Sally"})
    with factories.uow(app) as s:
        person = s.get(User, sales_id).salesperson_id
        s.add(
            Handoff(
                id=uuid.uuid4(),
                lead_id=theirs,
                person_id=person,
                routing_rule="walk-through",
                status=HandoffStatus.OFFERED,
            )
        )
    sales = Staff(browser, setup.url, sales_email, DESKTOP)
    try:
        sales.open("/console/leads")
        links = sales.page.locator("table.leads tbody tr a")
        assert links.count() == 1
        assert str(theirs) in (links.first.get_attribute("href") or "")
        sales.check("walkthrough-sales-leads", "en")
        assert sales.open(f"/console/leads/{lead_id}").status == 404
    finally:
        sales.close()

    # A viewer sees the charts and no personal data.
    viewer = Staff(browser, setup.url, factories.staff_user(app, "viewer")[1], DESKTOP)
    try:
        viewer.open("/console/dashboard")
        assert viewer.page.locator("svg.chart").count() >= 1
        html = viewer.page.content()
        assert email not in html and "Wanda" not in html
        assert not re.search(r"[\w.+-]+@example\.org", html)
        viewer.check("walkthrough-viewer-dashboard", "en")
        assert viewer.open("/console/leads").status == 403
        assert viewer.open(f"/console/leads/{lead_id}").status == 403
    finally:
        viewer.close()
