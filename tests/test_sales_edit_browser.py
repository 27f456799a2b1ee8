"""A salesperson's name and address changed in Debian's Chromium, in English and German:
another salesperson's address is refused next to the field with what was typed kept,
a new one is saved and shown, with the routing rule still naming the old one; axe-core
finds nothing serious; screenshots for a reviewer (``artifacts/console/sales-edit-*``)."""

from __future__ import annotations

from typing import Any

import pytest

from scoring import routing, rules, rulesets
from scoring.models import Salesperson
from tests import factories
from tests.test_console_browser import DESKTOP, Staff, served  # noqa: F401 (fixture)
from tests.test_widgets_browser import CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


def test_a_salesperson_gets_a_new_name_and_address(served: Any, browser: Any) -> None:  # noqa: F811
    app, url = served
    anna = factories.salesperson(app, "anna@sales.example", "Anna Schmidt", language="de")
    factories.salesperson(app, "ben@sales.example", "Ben Miller")
    vip = (
        '[[routing]]\nname = "vip"\nwhen = { country = "DE" }\nsalesperson = "anna@sales.example"\n'
    )
    with factories.uow(app) as s:
        rulesets.activate(s, rules.example_text() + "\n" + vip, actor="cli:test")
    _owner_id, owner = factories.staff_user(app, "owner")
    staff = Staff(browser, url, owner, DESKTOP)
    save = f"form[action$='/console/sales/people/{anna}'] > button"
    try:
        for lang, name, email in (
            ("en", "Anna Berg", "anna.berg@sales.example"),
            ("de", "Anna Berg-Schmidt", "anna@berg.example"),
        ):
            staff.open(f"/console/sales/people/{anna}")
            staff.language(lang)
            page = staff.page
            page.fill("#e-name", name)
            page.fill("#e-email", "ben@sales.example")
            with page.expect_navigation():
                page.click(save)
            assert page.locator("#e-name").input_value() == name
            assert page.locator("#e-email").input_value() == "ben@sales.example"
            assert page.locator("#e-email").get_attribute("aria-invalid") == "true"
            assert page.locator("#email-error").inner_text()
            staff.errors = [e for e in staff.errors if "status of 422" not in e]
            staff.check("sales-edit-refused", lang)

            page.fill("#e-email", email)
            with page.expect_navigation():
                page.click(save)
            assert page.locator("h1").inner_text() == name
            assert page.locator("#e-email").input_value() == email
            # The rules file still names her old address: the page says which rule.
            assert "vip" in page.locator("#unrouted").inner_text()
            staff.check("sales-edit-saved", lang)
            with factories.uow(app) as s:
                assert routing.contact(s, s.get(Salesperson, anna)) == routing.Contact(email, name)
    finally:
        staff.close()
