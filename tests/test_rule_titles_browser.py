"""Why this score / fit in Debian's Chromium: the handoff page, its mail and the console's
lead page show rule titles with a bar each, pass axe-core in English and German, and
are screenshotted into the git-ignored artifacts folder (``artifacts/console/rules-*.png``).
"""

from __future__ import annotations

import re

import pytest

from tests import factories
from tests.axe import axe_violations, require_axe
from tests.conftest import deliver, screenshot
from tests.test_console_browser import DESKTOP, PHONE, Staff, served, shots  # noqa: F401
from tests.test_scoring import contact_form, mails_to, path_of, qualify, setup_sales, text_of
from tests.test_widgets_browser import CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api")


def _bars(page, within: str = "body") -> list[tuple[str, float]]:
    """(rule title, bar width in px) of each rule row on the page (in ``within``)."""
    return [
        (row.locator("th").inner_text(), float(row.locator("rect").nth(1).get_attribute("width")))
        for row in page.locator(f"{within} table.lv-rule-lines tbody tr").all()
    ]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "phone"])
def test_handoff_page_mail_and_console_lead_show_rule_titles(
    served,  # noqa: F811
    browser,
    viewport,
    smtp_server,
):
    require_axe()
    app, url = served
    suffix = "" if viewport is DESKTOP else "-phone"
    setup_sales(app)  # Anna reads German, Ben English: round robin gives each a lead
    form_id = contact_form(app)
    leads = [qualify(app, form_id, f"lead{i}.bars@engines.example") for i in (1, 2)]
    deliver(app)
    for person, lang, title in (
        ("anna@sales.example", "de", "Preisseite angesehen"),
        ("ben@sales.example", "en", "Viewed the pricing page"),
    ):
        [mail] = mails_to(smtp_server, person)
        context = browser.new_context(viewport=viewport)
        try:
            page = context.new_page()
            page.set_content(mail.get_body(preferencelist=("html",)).get_content())
            screenshot(page, shots() / f"rules-handoff-mail{suffix}-{lang}.png", full_page=True)
            accept = re.findall(r"http://\S+/h/\S+", text_of(mail))[0]
            page.goto(url + path_of(accept))
            assert page.locator("html").get_attribute("lang") == lang
            bars = _bars(page)
            assert bars[0] == (title, 160.0)  # the largest rule: the whole width
            assert all(0 < width <= 160 for _t, width in bars)
            assert not any("_" in t for t, _w in bars)  # titles, not rule names
            screenshot(page, shots() / f"rules-handoff-page{suffix}-{lang}.png", full_page=True)
            assert axe_violations(page) == [], lang
        finally:
            context.close()

    owner = factories.staff_user(app, "owner")[1]
    staff = Staff(browser, url, owner, viewport)
    try:
        for lang, title in (("en", "Viewed the pricing page"), ("de", "Preisseite angesehen")):
            staff.open(f"/console/leads/{leads[0]}")
            staff.language(lang)
            staff.page.click("form[action$='/reveal'] button")
            staff.page.wait_for_load_state()
            assert _bars(staff.page, "section[aria-labelledby=h-score]")[0] == (title, 160.0)
            assert _bars(staff.page, "section[aria-labelledby=h-personal]")
            staff.check(f"rules-lead{suffix}", lang)
            staff.language("en")
    finally:
        staff.close()
