"""In Debian's Chromium, English and German: the trail shows a webhook ping by its label
and an entry under a code renamed since by that code; an asset over the upload limit
comes back as the console's page with the file field marked and the limit named (413).
axe-core on each, screenshots in ``artifacts/console/``."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from leadvault import audit
from leadvault.models import AuditEntry
from tests import factories
from tests.axe import require_axe
from tests.test_console_browser import (  # noqa: F401 - fixtures
    CHROMIUM,
    DESKTOP,
    Staff,
    served,
)
from widgets import assets

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]
PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


def test_trail_labels_and_an_upload_over_the_limit(served, browser, tmp_path: Path, monkeypatch):  # noqa: F811
    require_axe()
    app, url = served
    with factories.uow(app) as s:
        audit.record(
            s,
            actor="cli:ops",
            action=audit.Action.WEBHOOK_TESTED,
            object_type="webhook_endpoint",
            object_id=7,
        )
        older = audit.record(s, actor="cli:ops", action=audit.Action.LOGIN, object_type="user")
        s.execute(
            sa.update(AuditEntry).where(AuditEntry.id == older.id).values(action="auth.signin")
        )
    privacy = Staff(browser, url, factories.staff_user(app, "privacy")[1], DESKTOP)
    try:
        for lang, label in (
            ("en", "Webhook test event sent"),
            ("de", "Webhook-Testereignis gesendet"),
        ):
            privacy.open("/console/privacy")
            privacy.language(lang)
            trail = privacy.page.locator("#h-audit").locator("xpath=..").inner_text()
            assert label in trail and "auth.signin" in trail
            privacy.check("privacy-trail-labels", lang)
    finally:
        privacy.close()

    monkeypatch.setattr(assets, "MAX_BYTES", 1024 * 1024)
    source = tmp_path / "big.pdf"
    source.write_bytes(PDF + b"0" * (2 * 1024 * 1024))
    marketing = Staff(browser, url, factories.staff_user(app, "marketing")[1], DESKTOP)
    page = marketing.page
    try:
        for lang, message in (("en", "larger than 1 MB"), ("de", "größer als 1 MB")):
            marketing.open("/console/assets")
            marketing.language(lang)
            page.set_input_files("#file", str(source))
            page.fill("#title_en", "Field guide")
            page.click("form[enctype] button")
            page.wait_for_load_state()
            assert page.locator("#file[aria-invalid=true]").count() == 1
            assert message in page.inner_text("main")
            # The refusal itself, as Chromium logs it.
            marketing.errors[:] = [e for e in marketing.errors if "413" not in e]
            marketing.check("assets-too-large", lang)
    finally:
        marketing.close()
