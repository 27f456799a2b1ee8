"""Every page a lead or a salesperson sees, and every mail, in Chromium, branded.

Leadvault is served on a loopback port with a brand configured (logo, colours,
font, address); the mails come through the real services and real SMTP. Each
page is opened in German and in English, checked with axe-core (0 violations
of any impact) and for horizontal scrolling at 1280 px and on a phone, and
written as a screenshot to ``artifacts/branding/`` (git-ignored), as is the
HTML part of every mail, in light and dark mode.

axe-core is the npm package (tests/axe.py; ``.ci/run`` installs it); without it the
axe checks are skipped (the test says so at its end), the rest still runs.
"""

from __future__ import annotations

import re
import threading
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from tests import branding_helpers as bh
from tests.axe import AXE_JS, axe_violations, require_axe
from tests.conftest import SmtpSink, _smtp_config, free_port, screenshot

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api")

TIMEOUT_MS = 15_000
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


class Served:
    def __init__(self, app: Any, port: int) -> None:
        self.server = make_server("127.0.0.1", port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


class Pages:
    """A browser context in one language; every page it opens is checked and kept."""

    def __init__(self, browser: Any, lang: str, url: str) -> None:
        locale = {"de": "de-DE", "en": "en-GB"}[lang]
        self.context = browser.new_context(
            locale=locale, viewport=DESKTOP, timezone_id=bh.LEAD_ZONES[lang]
        )
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.lang = lang
        self.url = url
        self.seen: list[str] = []
        self.violations: dict[str, list[str]] = {}

    def open(self, link: str) -> Any:
        path = link.split("://", 1)[1].split("/", 1)[1]
        self.page.goto(f"{self.url}/{path}")
        return self.page

    def check(self, name: str, *, phone: bool = True) -> None:
        """Screenshot at 1280 px (and on a phone), axe, no horizontal scrolling."""
        page = self.page
        page.wait_for_load_state("load")
        assert page.locator("h1").count() == 1, (name, page.content()[:500])
        assert page.evaluate("document.documentElement.lang") == self.lang, name
        self._axe(name)
        sizes = [("desktop", DESKTOP)] + ([("phone", PHONE)] if phone else [])
        for label, size in sizes:
            page.set_viewport_size(size)
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, (name, label, overflow)
            screenshot(
                page, bh.artifacts() / f"page-{name}-{self.lang}-{label}.png", full_page=True
            )
        page.set_viewport_size(DESKTOP)
        self.seen.append(name)

    def _axe(self, name: str) -> None:
        if not AXE_JS.is_file():
            return
        found = axe_violations(self.page, impacts=None)  # any impact
        if found:
            self.violations[name] = [f"{v['impact']} {v['id']}: {v['targets']}" for v in found]

    def close(self) -> None:
        self.context.close()


def _link(mail: EmailMessage, kind: str) -> str:
    links = re.findall(rf"http://\S+?/{kind}/\S+", bh.text_of(mail))
    assert links, (kind, bh.text_of(mail))
    return links[0]


def _shoot_mails(browser: Any, found: dict[str, EmailMessage], lang: str) -> None:
    for scheme in ("light", "dark"):
        context = browser.new_context(viewport={"width": 700, "height": 900}, color_scheme=scheme)
        page = context.new_page()
        for kind, mail in found.items():
            (bh.artifacts() / f"mail-{kind}-{lang}.eml").write_bytes(bytes(mail))
            page.set_content(bh.html_of(mail), wait_until="load")
            # The logo (the only image) is the instance's own, and it loads.
            assert page.evaluate("[...document.images].every(i => i.naturalWidth > 0)"), kind
            name = f"mail-{kind}-{lang}" + ("-dark" if scheme == "dark" else "")
            screenshot(page, bh.artifacts() / f"{name}.png", full_page=True)
        context.close()


@pytest.mark.parametrize("lang", ["de", "en"])
def test_every_page_and_mail_branded_accessible_and_kept_as_screenshots(
    make_app: Any, smtp_server: SmtpSink, tmp_path: Path, browser: Any, lang: str
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = make_app(
        base_url=url, smtp_url=_smtp_config(smtp_server.port), **bh.brand_settings(tmp_path)
    )
    served = Served(app, port)
    try:
        found = bh.mails(app, smtp_server, lang, tmp_path)
        _shoot_mails(browser, found, lang)
        pages = Pages(browser, lang, url)
        try:
            _walk(pages, app, found, smtp_server, tmp_path)
        finally:
            pages.close()
    finally:
        served.close()
    assert len(pages.seen) >= 15, pages.seen
    require_axe()  # skips, saying how to install it, when axe-core is absent
    assert not pages.violations, pages.violations


def test_widget_that_cannot_load_says_so_in_the_pages_language(
    make_app: Any, smtp_server: SmtpSink, browser: Any
) -> None:
    from widgets import service

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = make_app(base_url=url, smtp_url=_smtp_config(smtp_server.port))
    served = Served(app, port)
    try:
        context = browser.new_context()
        page = context.new_page()
        loader = f"{url}/widgets/{service.loader_version()}/widget.js"
        for lang, text in (
            ("de-DE", "Das Formular konnte nicht geladen werden."),
            ("en", "The form could not be loaded."),
        ):
            page.set_content(
                f'<html lang="{lang}"><body><h1>Host</h1>'
                f'<script src="{loader}" data-leadvault-form="no-such-form"></script></body></html>'
            )
            sync_api.expect(page.locator(".lv-error")).to_have_text(text, timeout=TIMEOUT_MS)
        context.close()
    finally:
        served.close()


def _walk(
    pages: Pages, app: Any, found: dict[str, EmailMessage], smtp: SmtpSink, tmp_path: Path
) -> None:
    from tests.conftest import deliver

    page = pages.page
    # The hosted form and, without JavaScript's help, its thank-you page.
    form_id = bh.whitepaper_form(app, tmp_path, (bh.WEBSITE, HOST_SITE))
    pages.open(f"{pages.url}/f/{form_id}")
    pages.check("form")
    visitor = bh.unique_email("web")
    page.fill("#lv-email", visitor)
    page.check("input[name=consent]")
    page.click("button[type=submit]")
    pages.check("thanks")
    _without_javascript(pages, app, form_id)

    # Confirmation (a page with a button; the POST confirms).
    deliver(app)
    # The hosted page sent the browser's time zone (zone.js), as the widget does.
    assert _attributes(app, visitor).get("time_zone") == bh.LEAD_ZONES[pages.lang]
    [optin] = [m for m in smtp.messages if m["To"] == visitor]
    pages.open(_link(optin, "c"))
    pages.check("confirm")
    page.click("button[type=submit]")
    pages.check("confirmed")
    deliver(app)
    [asset] = [m for m in smtp.messages if m["To"] == visitor and "/d/" in bh.text_of(m)]

    # Unsubscribe (from the welcome mail).
    pages.open(_link(found["welcome"], "u"))
    pages.check("unsubscribe")

    # Manage my data: the request page and its answer.
    pages.open(f"{pages.url}/manage")
    pages.check("manage")
    page.fill("#lv-email", "nobody@example.org")
    page.click("button[type=submit]")
    pages.check("manage-sent")

    # The preference center, the access export and the erasure.
    pages.open(_link(found["manage"], "p"))
    pages.check("preferences")
    shown = page.locator("body").inner_text()
    paper = "Praxisleitfaden Predictive Maintenance"
    assert {
        "de": f"Whitepaper „{paper}“ auf www.beispiel-maschinen.de, 02.03.2026",
        "en": f"Whitepaper “{paper}” on www.beispiel-maschinen.de, Mar 2, 2026",
    }[pages.lang] in shown, shown
    # Withdraw and agree look different: an outlined button, a filled one.
    withdraw = page.locator("form[action$='/withdraw'] button")
    agree = page.locator("form[action$='/grant'] button")
    assert withdraw.count() == 1 and agree.count() == 3
    fill = "el => getComputedStyle(el).backgroundColor"
    assert withdraw.evaluate(fill) != agree.first.evaluate(fill)
    # Times in the lead's time zone (its browser's): New York's for the English reader.
    assert {"de": "10:30 CET", "en": "4:30\u00a0AM EST"}[pages.lang] in shown, shown
    # Art. 16: the new address's confirmation; the correction form, its errors, its answer.
    prefs = page.url
    pages.open(_link(found["email_change"], "address"))
    pages.check("confirm-address")
    page.click("button[type=submit]")
    pages.check("address-changed")
    # Another lead's notice to its old address: its link changes the address back.
    pages.open(_link(found["email_changed"], "address"))
    assert page.locator("h1").inner_text() in {
        "Change your address back",
        "Ihre Adresse zurücksetzen",
    }
    pages.check("address-back")
    page.goto(prefs)
    page.click("a[href$='/correct']")
    pages.check("correct")
    page.fill("#lv-email", "")
    page.fill("#lv-country", "D1")
    page.click("button[type=submit]")
    assert page.locator(".lv-error").count() == 2
    pages.check("correct-errors")
    page.fill("#lv-email", bh.unique_email("julia-korrigiert"))
    page.fill("#lv-country", "DE")
    page.click("button[type=submit]")
    pages.check("corrected")
    page.goto(prefs)
    access = page.locator("a[href*='/a/']").get_attribute("href")
    erase = page.locator("a[href*='/e/']").get_attribute("href")
    assert access and erase
    pages.open(pages.url + access)
    pages.check("access")
    pages.open(pages.url + erase)
    pages.check("erase")
    # A way out, and the one that erases styled as the dangerous action it is.
    assert page.locator("a.lv-secondary").get_attribute("href") == prefs.split(pages.url, 1)[1]
    assert page.locator("button[type=submit]").count() == 1
    page.click("button[type=submit].lv-danger")
    pages.check("erased")
    # The lead's old links now say so, instead of "link already used".
    from leadvault import i18n

    page.goto(prefs)
    erased = i18n.translate(pages.lang, "Your data has been erased")
    assert erased in page.locator("body").inner_text(), page.content()[:800]
    pages.check("erased-link")

    # The download page and the follow-up (progressive profiling) page.
    pages.open(_link(asset, "d"))
    pages.check("download")
    [more] = re.findall(r"http://\S+?/f/\S+?/more/\S+", bh.text_of(asset))
    pages.open(more)
    pages.check("follow-up")

    # The salesperson's handoff: the overview, accept and reject.
    links = re.findall(r"http://\S+?/h/\S+", bh.text_of(found["handoff"]))
    accept = next(link for link in links if link.endswith("/accept"))
    reject = next(link for link in links if link.endswith("/reject"))
    pages.open(accept.rsplit("/", 1)[0])
    pages.check("handoff")
    pages.open(reject)
    pages.check("handoff-reject")
    pages.open(accept)
    pages.check("handoff-accept")
    # Accepted: the BANT questions, their errors (one left open), saved answers.
    page.click("form[action$='/accept'] button[type=submit]")
    pages.check("handoff-accepted")
    pages.open(accept.rsplit("/", 1)[0])
    page.check("#lv-bant-need-yes")
    page.check("#lv-bant-budget-unknown")
    page.check("#lv-bant-authority-yes")
    page.click("form[action$='/bant'] button[type=submit]")
    assert page.locator("fieldset[aria-invalid=true]").count() == 1
    pages.check("handoff-bant-errors")
    page.check("#lv-bant-timeline-no")
    page.click("form[action$='/bant'] button[type=submit]")
    assert page.locator("fieldset[aria-invalid=true]").count() == 0
    page.click("form[action$='/sql'] button[type=submit]")
    assert page.locator("fieldset[aria-invalid=true]").count() == 2  # budget and timeline
    pages.check("handoff-sql-refused")
    deliver(app)


def _attributes(app: Any, email: str) -> dict[str, str]:
    from leadvault import leads
    from tests import factories

    with factories.uow(app) as s:
        lead = leads.find_by_email(s, email)
        assert lead is not None, email
        return leads.attributes_of(s, lead)


# The company's own page, served by the browser itself (a route), with the form that
# works without JavaScript.
HOST_SITE = "http://www.beispiel-maschinen.de"


def _without_javascript(pages: Pages, app: Any, form_id: str) -> None:
    """The plain HTML form on the company's page: one friendly more step here (no error),
    then the thank-you page with the way back to the company's site."""
    from capture import service as capture_service
    from tests import factories
    from widgets import service

    with factories.uow(app) as s:
        form = capture_service.get_form(s, form_id)
        assert form is not None
        [html] = [code for kind, code in service.snippets(s, form) if kind.startswith("html")]
    html = html.replace('name="lang" value="en"', f'name="lang" value="{pages.lang}"')
    host_page = (
        f'<!doctype html><html lang="{pages.lang}"><head><meta charset="utf-8">'
        f"<title>Beispiel</title></head><body><h1>Beispiel</h1>{html}</body></html>"
    )
    page = pages.page
    page.route(
        f"{HOST_SITE}/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body=host_page),
    )
    page.goto(f"{HOST_SITE}/loesungen/praxisleitfaden")
    page.fill("input[type=email]", bh.unique_email("plain"))
    page.check("input[name=consent]")
    page.click("button[type=submit]")
    page.wait_for_url(f"{pages.url}/f/{form_id}")
    assert page.locator(".lv-note[role=status]").count() == 1
    assert page.locator(".lv-error, .lv-summary, [role=alert]").count() == 0
    pages.check("form-one-more-step")
    page.click("button[type=submit]")
    back = page.locator("a.lv-button", has_text="www.beispiel-maschinen.de")
    assert back.get_attribute("href") == f"{HOST_SITE}/"
    pages.check("thanks-way-back")
    page.unroute(f"{HOST_SITE}/**")
