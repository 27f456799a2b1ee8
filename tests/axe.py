"""axe-core in Playwright: accessibility checks of real pages in Debian's chromium.

axe-core is an npm package (not on PyPI). ``.ci/run`` installs it into the
git-ignored ``.tools/node_modules/`` of the checkout; ``LEADVAULT_AXE_JS`` may
point at another copy of ``axe.min.js``. Tests call :func:`require_axe` first, which
skips them with a message saying how to install it when it is absent.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
AXE_JS = Path(
    os.environ.get("LEADVAULT_AXE_JS") or ROOT / ".tools/node_modules/axe-core/axe.min.js"
)


def require_axe() -> Path:
    if not AXE_JS.is_file():
        pytest.skip(
            f"axe-core not found at {AXE_JS}: run "
            "`npm install --no-save --no-package-lock --prefix .tools axe-core@4` (as .ci/run does)"
        )
    return AXE_JS


def axe_violations(
    page: Any, impacts: Iterable[str] | None = ("serious", "critical")
) -> list[dict[str, Any]]:
    """The page's axe-core violations (WCAG 2.x A/AA and best practices) of the given
    impacts (all impacts with ``None``), each with its rule id, help and targets."""
    # Evaluated through the DevTools protocol, not as a <script> element: the page's
    # strict CSP (script-src 'self') stays in force for the page itself.
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(require_axe().read_text(encoding="utf-8") + "\n;true")
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ["violations"]});
            return r.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.map(n => n.target.join(" ")).slice(0, 5),
            }));
        }"""
    )
    wanted = set(impacts) if impacts is not None else None
    return [v for v in result if wanted is None or v["impact"] in wanted]
