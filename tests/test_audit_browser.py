"""The audit trail on the console's privacy page in Debian's Chromium, in English and
German: every action to choose by its label, objects named, axe-core clean; the
screenshots (``$LEADVAULT_ARTIFACTS/console/audit-trail-*.png``) are for a reviewer."""

from __future__ import annotations

from typing import Any

import pytest

from leadvault import audit
from tests import factories
from tests.axe import require_axe
from tests.test_console_browser import DESKTOP, Staff, served  # noqa: F401 - a fixture
from tests.test_widgets_browser import CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


def _trail(app: Any) -> None:
    """A few entries of the kinds the console used to show only as codes and ids."""
    from consent import rights
    from leadvault.models import Lead

    form_id = factories.form(app, name="Spring webinar")
    kept, erased = factories.lead(app), factories.lead(app)
    with factories.uow(app) as s:
        audit.record(
            s,
            actor="cli:ops",
            action=audit.Action.WEBHOOK_ADDED,
            object_type=audit.ObjectType.WEBHOOK_ENDPOINT,
            object_id=1,
            detail={"events": ["lead.erased"], "purpose": None},
        )
        for action in (audit.Action.FORM_ARCHIVED, audit.Action.FORM_RESTORED):
            audit.record(s, actor="user:1", action=action, object_type="form", object_id=form_id)
        audit.record(s, actor="system", action=audit.Action.LEADS_IMPORTED, object_type="leads")
        for lead_id in (kept, erased):
            audit.record_lead(s, lead_id, audit.Action.LEAD_REVEALED, actor="user:1")
        rights.erase(s, s.get(Lead, erased), actor="user:1", reason="request")


def test_audit_trail_in_both_languages(served, browser):  # noqa: F811 - the fixture
    require_axe()
    app, url = served
    _trail(app)
    _, email = factories.staff_user(app, "owner")
    staff = Staff(browser, url, email, DESKTOP)
    try:
        for lang, archived in (("en", "Form archived"), ("de", "Formular archiviert")):
            staff.open("/console/privacy")
            staff.language(lang)
            page = staff.page
            options = page.locator("#a-action option")
            assert options.count() == len(audit.Action) + 1  # and "Any"
            page.select_option("#a-action", label=archived)
            page.locator("form.filters button").click()
            page.wait_for_load_state()
            rows = page.locator("#h-audit ~ .table-wrap tbody tr")
            assert rows.count() == 1 and "Spring webinar" in rows.first.inner_text()
            staff.open("/console/privacy")
            staff.check("audit-trail", lang)
    finally:
        staff.close()
