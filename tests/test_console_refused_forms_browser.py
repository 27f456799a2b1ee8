"""A refused console form in Debian's Chromium: the salesperson form sent with a
control character in the name comes back with the name as typed (the character a
visible U+FFFD), the field marked and its message beside it; axe-core finds nothing
serious; a screenshot for a reviewer (``artifacts/console/``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests import factories
from tests.test_console_browser import DESKTOP, Staff, served  # noqa: F401 (fixture)
from tests.test_widgets_browser import CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


def test_a_refused_salesperson_keeps_what_was_typed(served: Any, browser: Any) -> None:  # noqa: F811
    app, url = served
    _owner_id, owner = factories.staff_user(app, "owner")
    staff = Staff(browser, url, owner, DESKTOP)
    try:
        for lang in ("en", "de"):
            staff.open("/console/sales")
            staff.language(lang)
            page = staff.page
            # A name pasted with a vertical tab (typing cannot enter one).
            page.locator("#p-name").evaluate("(el) => { el.value = 'Anna\\u000bBerg'; }")
            page.fill("#p-email", "anna@sales.example")
            page.fill("#p-weight", "3")
            with page.expect_navigation():
                page.locator("#p-name").evaluate("(el) => el.form.requestSubmit()")
            name = page.locator("#p-name")
            assert name.input_value() == "Anna\ufffdBerg"
            assert name.get_attribute("aria-invalid") == "true"
            assert page.locator("#p-email").input_value() == "anna@sales.example"
            assert page.locator("#p-weight").input_value() == "3"
            assert "U+000B" in page.locator("#name-error").inner_text()
            # Chromium logs the answer's status (422) as a console error: that one is meant.
            staff.errors = [e for e in staff.errors if "status of 422" not in e]
            staff.check("sales-refused", lang)
    finally:
        staff.close()
