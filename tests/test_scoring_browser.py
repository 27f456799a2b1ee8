"""The scoring, sales team and handoff pages in Debian's Chromium (issue 12 §6).

Marketing edits the rules file, sees the refused line marked, fixes it, runs the
dry run, confirms and activates; the owner's sales team and handoff pages. Every
page is checked with axe-core in English and German and screenshotted into the
git-ignored artifacts folder (``artifacts/console/scoring-*.png``).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest

from leadvault import clock
from scoring import absences, rules, sales_team, sales_teams
from scoring.models import Handoff, Stage
from tests import factories
from tests.axe import require_axe
from tests.test_console_browser import DESKTOP, PHONE, Staff, served  # noqa: F401
from tests.test_scoring import contact_form
from tests.test_scoring_admin import BAD_LINE, _graded_lead, _state
from tests.test_widgets_browser import CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api")


def _editor_text(staff: Staff) -> str:
    return staff.page.locator("#rules-text").input_value()


def _expect_refused(staff: Staff) -> None:
    """A refused form answers 422, which Chromium logs as a failed load: expected here."""
    refused = [e for e in staff.errors if "status of 422" in e]
    assert refused, "the form was not refused"
    for error in refused:
        staff.errors.remove(error)


def test_marketing_edits_validates_fixes_previews_and_activates(served, browser):  # noqa: F811
    require_axe()
    app, url = served
    lead_id = _graded_lead(app, contact_form(app))
    marketing = factories.staff_user(app, "marketing")[1]
    staff = Staff(browser, url, marketing, DESKTOP)
    try:
        page = staff.page
        for lang in ("en", "de"):
            staff.open("/console/scoring")
            staff.language(lang)
            staff.check("scoring-editor", lang)
        staff.language("en")
        text = _editor_text(staff)
        assert "mql_score = 35" in text
        # A typo: the pricing rule's points are not a number.
        broken = text.replace("points = 20\n", "points = twenty\n", 1)
        page.fill("#rules-text", broken)
        page.click("button[value=validate]")
        page.wait_for_load_state()
        problem = page.locator("#rules-problem")
        assert f"Line {BAD_LINE}:" in problem.inner_text()
        marked = page.locator(f"#line-{BAD_LINE}")
        assert "points = twenty" in marked.inner_text()
        assert marked.locator(".line-problem").count() == 1
        _expect_refused(staff)
        staff.check("scoring-error", "en")
        staff.language("de")  # after a POST the switch goes to the console's home
        staff.open("/console/scoring")
        page.fill("#rules-text", broken)
        page.click("button[value=validate]")
        page.wait_for_load_state()
        assert f"Zeile {BAD_LINE}:" in page.locator("#rules-problem").inner_text()
        _expect_refused(staff)
        staff.check("scoring-error", "de")

        # Fixed, and with a lower MQL threshold: the dry run counts the one lead.
        fixed = _editor_text(staff).replace("points = twenty\n", "points = 20\n", 1)
        page.fill("#rules-text", fixed.replace("mql_score = 35", "mql_score = 10", 1))
        page.click("button[value=dry_run]")
        page.wait_for_load_state()
        assert page.locator("#rules-ok").count() == 1
        assert page.locator("#dry-promotions").inner_text() == "1"
        staff.check("scoring-dry-run", "de")
        assert _state(app, lead_id)[1] == Stage.NEW

        page.click("button[formaction$='/scoring/confirm']")
        page.wait_for_load_state()
        assert page.locator("#confirm-promotions").inner_text() == "1"
        assert page.locator("tr.d-add").count() >= 1
        staff.check("scoring-confirm", "de")
        page.click("#confirm-activate")
        page.wait_for_url(re.compile(r".*/console/scoring/versions/1\?activated=1"))
        assert page.locator("#activated").count() == 1
        staff.check("scoring-version", "de")
        staff.language("en")
        staff.check("scoring-version", "en")
        staff.open("/console/scoring/versions")
        staff.check("scoring-versions", "en")
        assert _state(app, lead_id)[1] == Stage.MQL
        with factories.uow(app) as s:
            assert rules.active(s).mql_score == 10
    finally:
        staff.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "phone"])
def test_owner_sales_team_and_handoff_pages(served, browser, viewport):  # noqa: F811
    require_axe()
    app, url = served
    with factories.uow(app) as s:
        anna = sales_team.add_person(
            s, email="anna@sales.example", name="Anna Schmidt", actor="cli:test"
        )
        ben = sales_team.add_person(
            s, email="ben@sales.example", name="Ben Miller", weight=2, actor="cli:test"
        )
        team = sales_teams.add_team(s, "dach", actor="cli:test")
        sales_teams.add_member(s, team.id, anna.id, actor="cli:test")
        sales_teams.add_member(s, team.id, ben.id, actor="cli:test")
        today = clock.now().date()
        absences.add_absence(s, ben.id, today, today + dt.timedelta(days=3), actor="cli:test")
        anna_id = anna.id
    for person, hours in ((anna_id, 30), (anna_id, 2), (None, 5)):
        lead_id = factories.lead(app)
        with factories.uow(app) as s:
            s.add(
                Handoff(
                    id=uuid.uuid4(),
                    lead_id=lead_id,
                    person_id=person,
                    routing_rule="dach",
                    status="offered" if person else "queued",
                    offered_at=clock.now() - dt.timedelta(hours=hours),
                )
            )
    suffix = "" if viewport is DESKTOP else "-phone"
    owner = factories.staff_user(app, "owner")[1]
    staff = Staff(browser, url, owner, viewport)
    try:
        for lang in ("en", "de"):
            for name, path in (
                ("sales", "/console/sales"),
                ("sales-person", f"/console/sales/people/{anna_id}"),
                ("handoffs", "/console/handoffs"),
                ("handoffs-overdue", "/console/handoffs?overdue=1"),
            ):
                staff.open(path)
                staff.language(lang)
                staff.check(f"scoring-{name}{suffix}", lang)
        staff.language("en")
        staff.open("/console/handoffs")
        assert staff.page.locator("#overdue-count").inner_text() == "1"
        assert staff.page.locator("tr.warn").count() == 1
        # A refused form shows its message next to the field.
        staff.open("/console/sales")
        staff.page.fill("#p-name", "Carla")
        staff.page.fill("#p-email", "anna@sales.example")
        staff.page.locator("form[action$='/sales/people'] button").click()
        staff.page.wait_for_load_state()
        assert "exists already" in staff.page.locator("#email-error").inner_text()
        _expect_refused(staff)
        staff.check(f"scoring-sales-error{suffix}", "en")
        # In German the service's refusal is German, next to the field it is about.
        staff.open("/console/sales")
        staff.language("de")
        staff.page.fill("#p-name", "Carla")
        staff.page.fill("#p-email", "anna@sales.example")
        staff.page.locator("form[action$='/sales/people'] button").click()
        staff.page.wait_for_load_state()
        assert staff.page.locator("#email-error").inner_text() == (
            "Es gibt schon eine Vertriebsperson mit dieser Adresse."
        )
        _expect_refused(staff)
        staff.check(f"scoring-sales-error{suffix}", "de")
    finally:
        staff.close()
