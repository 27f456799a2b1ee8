"""In Debian's Chromium, English and German: a date filter the calendar lacks comes back
as the lead list or the privacy page (400) with the field marked and described and the
other filters kept; the export page names it and offers no download; the settings page's
check names a failed inbox item. axe-core on each, screenshots in ``artifacts/console/``."""

from __future__ import annotations

import datetime as dt

import pytest

from leadvault.models import InboxStatus
from tests import factories
from tests.axe import require_axe
from tests.test_check_inbox import _items
from tests.test_console_browser import (  # noqa: F401 - fixtures
    CHROMIUM,
    DESKTOP,
    Staff,
    served,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


def test_bad_days_are_marked_where_they_were_typed(served, browser):  # noqa: F811
    require_axe()
    app, url = served
    _items(app, (InboxStatus.FAILED, "IntegrityError", dt.timedelta(hours=5)))
    owner = Staff(browser, url, factories.staff_user(app, "owner")[1], DESKTOP)
    page = owner.page
    try:
        for lang, words in (("en", "no such day"), ("de", "Diesen Tag gibt es")):
            owner.open("/console/leads")
            owner.language(lang)
            response = owner.open("/console/leads?stage=new&until=2026-02-30")
            assert response.status == 400
            assert page.locator("#f-until[aria-invalid=true]").count() == 1
            assert words in page.inner_text("#f-until-error")
            assert page.locator("#f-stage").input_value() == "new"
            owner.errors[:] = [e for e in owner.errors if "400" not in e]
            owner.check("leads-filter-bad-day", lang)

            response = owner.open("/console/privacy?actor=user:7&since=10000-01-01")
            assert response.status == 400
            assert page.locator("#a-since[aria-invalid=true]").count() == 1
            assert page.locator("#a-actor").input_value() == "user:7"
            owner.errors[:] = [e for e in owner.errors if "400" not in e]
            owner.check("privacy-filter-bad-day", lang)

            response = owner.open("/console/exports?until=2026-02-30")
            assert response.status == 400
            assert words in page.inner_text("[role=alert]")
            owner.errors[:] = [e for e in owner.errors if "400" not in e]
            owner.check("exports-filter-bad-day", lang)

            owner.open("/console/settings?check=1")
            assert "1 FAILED" in page.inner_text("main")
            owner.check("settings-check-failed-inbox", lang)
    finally:
        owner.close()


def test_empty_ranges_and_a_bad_period_are_named_in_the_page(served, browser):  # noqa: F811
    """A "to" day before the "from" day is marked on "to" naming both; the dashboard
    shows its default period and says why, for a period it does not offer."""
    require_axe()
    app, url = served
    owner = Staff(browser, url, factories.staff_user(app, "owner")[1], DESKTOP)
    page = owner.page
    try:
        for lang, words in (("en", "Created from"), ("de", "Erstellt ab")):
            owner.open("/console/leads")
            owner.language(lang)
            response = owner.open("/console/leads?since=2026-03-02&until=2026-03-01")
            assert response.status == 400
            assert page.locator("#f-until[aria-invalid=true]").count() == 1
            assert page.locator("#f-since[aria-invalid=true]").count() == 0
            assert words in page.inner_text("#f-until-error")
            owner.errors[:] = [e for e in owner.errors if "400" not in e]
            owner.check("leads-filter-empty-range", lang)

            response = owner.open("/console/privacy?since=2026-03-02&until=2026-03-01")
            assert response.status == 400
            assert page.locator("#a-until[aria-invalid=true]").count() == 1
            owner.errors[:] = [e for e in owner.errors if "400" not in e]
            owner.check("privacy-filter-empty-range", lang)

            response = owner.open("/console/dashboard?days=7")
            assert response.status == 400
            assert "30" in page.inner_text("#period-error")
            assert page.locator("ul.switch[aria-describedby=period-error]").count() == 1
            assert page.locator("#h-funnel").count() == 1
            owner.errors[:] = [e for e in owner.errors if "400" not in e]
            owner.check("dashboard-bad-period", lang)
    finally:
        owner.close()
