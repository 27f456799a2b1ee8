"""The export, import and webhook pages in Debian's Chromium: axe-core (no serious or
critical violation), one h1, no CSP or script error, in English and German, at
1280 px and at phone width; screenshots into ``artifacts/console/``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import factories
from tests.axe import require_axe
from tests.conftest import LiveServer
from tests.test_console_browser import (
    CHROMIUM,
    DESKTOP,
    PHONE,
    Staff,
)
from tests.test_imports import HEADER, PROOF_TEXT, csv_bytes
from tests.test_webhooks import LOOPBACK

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


@pytest.fixture
def served(make_app: Any, smtp_server: Any) -> Iterator[tuple[Any, str]]:
    """Leadvault on a loopback port; webhook URLs on loopback allowed (nothing is sent)."""
    from tests.conftest import _smtp_config

    app = make_app(smtp_url=_smtp_config(smtp_server.port), webhook_allow_networks=LOOPBACK)
    with LiveServer(app) as server:
        yield app, server.url


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "phone"])
def test_export_import_and_webhook_pages(served, browser, viewport, tmp_path: Path) -> None:
    require_axe()
    app, url = served
    factories.lead(app, "ada@example.org", profile={"first_name": "Ada"})
    upload = tmp_path / "contacts.csv"
    upload.write_bytes(
        csv_bytes(
            [
                HEADER,
                ["ina@example.org", "Ina", "", "", "", "2021-04-01T08:00:00Z", "x", PROOF_TEXT],
                ["broken", "", "", "", "", "", "", ""],
            ]
        )
    )
    suffix = "" if viewport is DESKTOP else "-phone"
    owner = factories.staff_user(app, "owner")[1]
    staff = Staff(browser, url, owner, viewport)
    page = staff.page
    try:
        for lang in ("en", "de"):
            staff.open("/console/exports?grade=D")
            staff.language(lang)
            staff.check(f"exports{suffix}", lang)
            expected = "excel-de" if lang == "de" else "excel"
            assert page.locator("#x-dialect").input_value() == expected

            staff.open("/console/imports")
            staff.check(f"imports{suffix}", lang)
            page.set_input_files("#i-file", str(upload))
            page.click("button[name=mode][value=check]")
            page.wait_for_load_state()
            assert page.locator("table.data tbody tr.warn").count() == 1
            staff.check(f"imports-report{suffix}", lang)

            staff.open("/console/webhooks")
            staff.check(f"webhooks{suffix}", lang)
        _add_endpoint(staff)
        for lang in ("en", "de"):
            staff.open("/console/webhooks")
            staff.language(lang)
            page.locator("table.data a").first.click()
            page.wait_for_load_state()
            staff.check(f"webhook{suffix}", lang)
            page.click("form[action$='/rotate-secret'] button")
            page.wait_for_load_state()
            assert page.locator("#secret").input_value().startswith("whsec_")
            staff.check(f"webhook-secret{suffix}", lang)
    finally:
        staff.close()


def _add_endpoint(staff: Any) -> None:
    """Through the form, as an owner would (nothing listens on the port: no delivery)."""
    page = staff.page
    staff.open("/console/webhooks?lang=en")
    page.fill("#w-url", "http://127.0.0.1:9/hooks/leadvault")
    page.fill("#w-description", "CRM")
    page.check("#w-e-1")
    page.click("form[action$='/webhooks'] button")
    page.wait_for_load_state()
    assert page.locator("#secret").input_value().startswith("whsec_")
