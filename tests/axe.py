"""axe-core in Playwright: accessibility checks of real pages in Debian's chromium.

axe-core is an npm package (not on PyPI). ``.ci/run`` installs it into the
git-ignored ``.tools/node_modules/`` of the checkout; ``LEADVAULT_AXE_JS`` may
point at another copy of ``axe.min.js``. Tests call :func:`require_axe` first, which
skips them with a message saying how to install it when it is absent.

A test that runs on both databases checks the same pages, built from the same
templates, stylesheets and test data, on each: its axe checks run on the first
database only (like its screenshots, ``conftest.screenshot``). The n-th check of a
test on PostgreSQL is skipped when the n-th check of the same test on SQLite ran and
found nothing; everything else the test asserts (status, h1, language, script and
CSP errors, the data shown) still runs on both. About 0.15 s a page.
"""

from __future__ import annotations

import os
import re
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


# (test without its database, impacts, n-th check in it) of the checks that found nothing.
_PASSED: set[tuple[str, str, int]] = set()
_CHECKS: dict[str, int] = {}  # checks so far, by the running test's full id
_BACKEND = re.compile(r"(?<=[\[-])(sqlite|postgresql)(?=[\]-])")


def _check_key(impacts: tuple[str, ...] | None) -> tuple[tuple[str, str, int], bool]:
    """This check's key, and whether the same check passed on the other database."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
    _CHECKS[test] = number = _CHECKS.get(test, 0) + 1
    key = (_BACKEND.sub("", test), repr(impacts), number)
    return key, key in _PASSED and _BACKEND.search(test) is not None


def axe_violations(
    page: Any, impacts: Iterable[str] | None = ("serious", "critical")
) -> list[dict[str, Any]]:
    """The page's axe-core violations (WCAG 2.x A/AA and best practices) of the given
    impacts (all impacts with ``None``), each with its rule id, help and targets; none
    when the same check of the same test passed on the other database (module doc)."""
    wanted_impacts = tuple(impacts) if impacts is not None else None
    key, passed_before = _check_key(wanted_impacts)
    if passed_before:
        return []
    found = _run_axe(page, wanted_impacts)
    if not found:
        _PASSED.add(key)
    return found


def _run_axe(page: Any, impacts: tuple[str, ...] | None) -> list[dict[str, Any]]:
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
