"""The console's forms section in Debian's Chromium (issue 12.4): an owner creates a form
in the editor (a refused entry first, its message next to the field), sees the live
preview of the hosted page in both languages and the embed snippets with working copy
buttons; axe-core (no serious or critical violation) and screenshots of every forms page
in English and German, at 1280 px and at phone width."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests import factories
from tests.axe import require_axe
from tests.test_console_browser import DESKTOP, PHONE, Staff, served  # noqa: F401
from tests.test_widgets_browser import CHROMIUM

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


def _create_in_the_editor(staff: Staff) -> str:
    page = staff.page
    staff.open("/console/forms")
    page.click("a[href$='/console/forms/new']")
    page.wait_for_url(re.compile(r".*/console/forms/new$"))
    page.fill("#name", "Spring guide (staff)")
    page.fill("#title_en", "Our spring letter")
    page.fill("#title_de", "Unser Frühlingsbrief")
    page.fill("#intro_en", "Once a month, no spam.")
    page.fill("#intro_de", "Einmal im Monat, kein Spam.")
    page.select_option("#field_company", "required")
    page.fill("#allowed_origins", "https://www.example.com")
    page.check("input[name=after][value=redirect]")
    page.fill("#redirect_url", "https://elsewhere.example.net/thanks")
    page.click("form.editor button")
    page.wait_for_load_state()
    # Refused: the message sits next to the field, which is marked invalid.
    assert page.locator("#redirect_url[aria-invalid=true]").count() == 1
    assert page.locator("#redirect_url-error").is_visible()
    page.fill("#redirect_url", "https://www.example.com/thanks")
    page.click("form.editor button")
    page.wait_for_url(re.compile(r".*/console/forms/[^/]+\?done=created$"))
    return page.url.split("/console/forms/")[1].split("?")[0]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "phone"])
def test_forms_pages_in_both_languages(served, browser, viewport):  # noqa: F811
    require_axe()
    app, url = served
    suffix = "" if viewport is DESKTOP else "-phone"
    owner = factories.staff_user(app, "owner")[1]
    staff = Staff(browser, url, owner, viewport)
    try:
        staff.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
        form_id = _create_in_the_editor(staff)
        staff.errors.clear()
        factories.lead(app, form_id=form_id)
        page = staff.page
        # The preview frames show the hosted page, each in its language, under the CSP.
        for lang, title in (("en", "Our spring letter"), ("de", "Unser Frühlingsbrief")):
            frame = page.locator(f"iframe[src$='lang={lang}']")
            frame.scroll_into_view_if_needed()  # the frames load lazily
            heading = page.frame_locator(f"iframe[src$='lang={lang}']").locator("h1")
            sync_api.expect(heading).to_have_text(title)
        # Copy buttons appear with JavaScript and copy the snippet.
        button = page.locator("button[data-copy='snippet-1']")
        assert button.is_visible()
        button.click()
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied == page.input_value("#snippet-1") and copied.endswith(f"/f/{form_id}")
        for lang in ("en", "de"):
            for name, path in (
                ("forms", "/console/forms"),
                ("form", f"/console/forms/{form_id}"),
                ("form-new", "/console/forms/new"),
                ("form-edit", f"/console/forms/{form_id}/edit"),
                ("form-delete", f"/console/forms/{form_id}/delete"),
            ):
                staff.open(path)
                staff.language(lang)
                staff.check(f"owner-{name}{suffix}", lang)
            # The editor with refused entries.
            staff.open("/console/forms/new")
            page.fill("#name", "")
            page.fill("#allowed_origins", "not an origin")
            page.click("form.editor button")
            page.wait_for_load_state()
            assert page.locator("[aria-invalid=true]").count() >= 1
            staff.errors.remove(  # the refused post answers 422, as it should
                "Failed to load resource: the server responded with a status of 422 "
                "(UNPROCESSABLE ENTITY)"
            )
            staff.check(f"owner-form-errors{suffix}", lang)
            staff.language("en")
        assert staff.errors == []
    finally:
        staff.close()


def test_viewer_sees_forms_without_editing(served, browser):  # noqa: F811
    app, url = served
    form_id = factories.form(app, name="Footer newsletter")
    viewer = factories.staff_user(app, "viewer")[1]
    staff = Staff(browser, url, viewer, DESKTOP)
    try:
        staff.open(f"/console/forms/{form_id}")
        html: Any = staff.page.content()
        assert "Footer newsletter" in html and "/edit" not in html and "/archive" not in html
        assert staff.page.locator("nav a[href$='/console/forms']").count() == 1
    finally:
        staff.close()
