"""The consent texts and assets sections of the console in Debian's Chromium: marketing
writes a new version, sees what changed (marked in text, not only in colour) and
publishes it; uploads an asset and edits its German title. axe-core on every page in
English and German (0 serious or critical), at 1280 px and phone width, with
screenshots in ``artifacts/console/``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests import factories
from tests.axe import require_axe
from tests.test_console_browser import (  # noqa: F401 - fixtures
    CHROMIUM,
    DESKTOP,
    PHONE,
    Staff,
    served,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]
NEW = "Yes, send me the monthly newsletter with offers. I can unsubscribe at any time."
PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


def test_new_version_with_diff_and_assets_in_both_languages(served, browser, tmp_path: Path):  # noqa: F811
    require_axe()
    app, url = served
    factories.form(app, name="Footer newsletter")
    marketing = factories.staff_user(app, "marketing")[1]
    staff = Staff(browser, url, marketing, DESKTOP)
    page = staff.page
    try:
        for lang in ("en", "de"):
            staff.open("/console/consent")
            staff.language(lang)
            assert page.locator("nav a[aria-current=page]").count() == 1
            staff.check("consent-texts", lang)
            staff.open("/console/consent/newsletter")
            staff.check("consent-purpose", lang)
        staff.language("en")

        # Write, see the changes, publish.
        staff.open("/console/consent")
        page.locator("#p-newsletter a.button-link[href$='language=en']").click()
        page.wait_for_url(re.compile(r".*/consent/newsletter/new\?language=en"))
        staff.check("consent-new", "en")
        page.fill("#text", NEW)
        page.click("button[value=preview]")
        page.wait_for_load_state()
        changes = page.locator("#changes")
        assert changes.locator("ins").count() >= 1
        assert "added:" in changes.inner_text()  # read out, not only coloured
        staff.check("consent-new-diff", "en")
        page.click("button[value=publish]")
        page.wait_for_url(re.compile(r".*/console/consent\?published=.*"))
        notice = page.locator("[role=status]").inner_text()
        assert "Version 2" in notice
        staff.check("consent-published", "en")
        newsletter = page.locator("#p-newsletter").inner_text()
        assert "monthly newsletter with offers" in newsletter
        assert "Footer newsletter" in newsletter

        # The German diff step, too.
        staff.open("/console/consent/newsletter/new?language=de")
        staff.language("de")
        page.fill("#text", "Ja, senden Sie mir den monatlichen Newsletter.")
        page.click("button[value=preview]")
        page.wait_for_load_state()
        assert "hinzugefügt:" in page.locator("#changes").inner_text()
        staff.check("consent-new-diff", "de")

        # Assets: upload, the asset's page, the archived list.
        source = tmp_path / "field-guide.pdf"
        source.write_bytes(PDF)
        for lang in ("en", "de"):
            staff.open("/console/assets")
            staff.language(lang)
            staff.check("assets", lang)
        staff.language("en")
        staff.open("/console/assets")
        page.set_input_files("#file", str(source))
        page.fill("#title_en", "Field guide")
        page.fill("#title_de", "Praxisleitfaden")
        page.click("form[enctype] button")
        page.wait_for_url(re.compile(r".*/console/assets/[^/?]+\?done=uploaded"))
        for lang in ("en", "de"):
            staff.language(lang)
            staff.check("asset", lang)
        assert page.locator("h1").inner_text() == "Praxisleitfaden"
        staff.open("/console/assets")
        page.set_input_files("#file", str(source))
        page.fill("#title_en", "")
        page.click("form[enctype] button")
        page.wait_for_load_state()
        assert page.locator("#title_en[aria-invalid=true]").count() == 1
        staff.errors.remove(next(e for e in staff.errors if "422" in e))  # the refusal itself
        staff.check("assets-error", "de")
    finally:
        staff.close()

    phone = Staff(browser, url, marketing, PHONE)
    try:
        for lang in ("en", "de"):
            phone.open("/console/consent")
            phone.language(lang)
            phone.check("consent-texts-phone", lang)
            phone.open("/console/assets")
            phone.check("assets-phone", lang)
    finally:
        phone.close()
