"""In Debian's Chromium, English and German: an audit trail filter code the select does not
offer (a hand-made URL) comes back as the privacy page (400) with the select marked and
the problem named, not an empty trail. axe-core on it, screenshots in ``artifacts/console/``."""

from __future__ import annotations

import pytest

from tests import factories
from tests.axe import require_axe
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


def test_an_uncatalogued_filter_code_marks_the_select(served, browser):  # noqa: F811
    require_axe()
    app, url = served
    privacy = Staff(browser, url, factories.staff_user(app, "privacy")[1], DESKTOP)
    page = privacy.page
    try:
        for lang, message in (
            ("en", "There is no such action"),
            ("de", "Diese Aktion gibt es nicht"),
        ):
            privacy.open("/console/privacy")
            privacy.language(lang)
            response = privacy.open("/console/privacy?action=lead.vanished")
            assert response.status == 400
            assert page.locator("#a-action[aria-invalid=true]").count() == 1
            assert message in page.inner_text("#a-action-error")
            # The refusal itself, as Chromium logs it.
            privacy.errors[:] = [e for e in privacy.errors if "400" not in e]
            privacy.check("privacy-filter-uncatalogued", lang)
    finally:
        privacy.close()
