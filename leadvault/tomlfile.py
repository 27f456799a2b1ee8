"""Reading TOML definition files with errors that name the file and the line.

Shared by the scoring rules and the nurture sequences. Syntax errors come
from ``tomllib``; for semantic errors the line of the offending table, array
entry or key is found by scanning the text (``tomllib`` keeps no positions).
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from leadvault.i18n import N_


class SourceError(Exception):
    """A definition file the service refuses; the message is ``source:line: reason``."""


# tomllib's own reasons that name nothing of the file, marked so that a reader of another
# language gets them translated; the others (naming a key or a character) stay as they are.
SYNTAX_REASONS = frozenset(
    {
        N_("Cannot overwrite a value"),
        N_("Escaped character is not a Unicode scalar value"),
        N_("Expected '=' after a key in a key/value pair"),
        N_("Expected ']' at the end of a table declaration"),
        N_("Expected ']]' at the end of an array declaration"),
        N_("Invalid date or datetime"),
        N_("Invalid hex value"),
        N_("Invalid initial character for a key part"),
        N_("Invalid statement"),
        N_("Invalid value"),
        N_("Unclosed array"),
        N_("Unclosed inline table"),
        N_("Unescaped '\\' in a string"),
        N_("Unterminated string"),
    }
)


def syntax_problem(text: str, error: tomllib.TOMLDecodeError) -> tuple[int, str]:
    """A syntax error's line and its reason without tomllib's position."""
    found = re.search(r"at line (\d+)", str(error))
    line = int(found.group(1)) if found else max(text.count("\n") + 1, 1)
    reason = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", str(error))
    return line, reason


def loads(text: str, *, source: str, error: type[Exception] = SourceError) -> dict[str, Any]:
    """Parse TOML; a syntax error becomes ``error("source:line: reason")``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, reason = syntax_problem(text, exc)
        raise error(f"{source}:{line}: {reason}") from None


class Locator:
    """Finds the line of a table, an array-of-tables entry or a key in TOML text."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def _headers(self, name: str, array: bool) -> list[int]:
        pattern = (
            re.compile(rf"^\s*\[\[\s*{re.escape(name)}\s*\]\]\s*(#.*)?$")
            if array
            else re.compile(rf"^\s*\[\s*{re.escape(name)}\s*\]\s*(#.*)?$")
        )
        return [i for i, line in enumerate(self.lines) if pattern.match(line)]

    def line(self, table: str, index: int | None = None, key: str | None = None) -> int:
        """1-based line of ``[table]`` (or the ``index``-th ``[[table]]``), or of ``key`` in it."""
        headers = self._headers(table, array=index is not None)
        if not headers and index is None:
            # [a.b] written only as its sub-tables [a.b.c]: the first of those.
            prefix = re.compile(rf"^\s*\[\s*{re.escape(table)}\.")
            headers = [i for i, line in enumerate(self.lines) if prefix.match(line)][:1]
        if not headers:
            return 1
        start = headers[index or 0] if (index or 0) < len(headers) else headers[-1]
        if key is None:
            return start + 1
        key_pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for i in range(start + 1, len(self.lines)):
            if self.lines[i].lstrip().startswith("["):
                break
            if key_pattern.match(self.lines[i]):
                return i + 1
        return start + 1


Where = tuple[str, int | None]


class Checker:
    """Builds line-precise errors and checks common value shapes.

    Messages are message ids (``N_``) with ``%(name)s`` values: a subclass whose error
    carries them (``scoring.rules.RulesError``) overrides :meth:`fail_at`; by default the
    error gets the English text."""

    def __init__(self, text: str, source: str, error: type[Exception] = SourceError) -> None:
        self.locator = Locator(text)
        self.source = source
        self.error = error

    def fail(
        self,
        message: str,
        table: str,
        index: int | None = None,
        key: str | None = None,
        **values: object,
    ) -> Exception:
        return self.fail_at(self.locator.line(table, index, key), message, **values)

    def fail_at(self, line: int, message: str, **values: object) -> Exception:
        return self.error(f"{self.source}:{line}: {message % values if values else message}")

    def number(self, table: dict[str, Any], key: str, where: Where, **kw: Any) -> float:
        value = table.get(key, kw.get("default"))
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(N_("%(name)s must be a number"), where[0], where[1], key, name=key)
        if "minimum" in kw and value < kw["minimum"]:
            raise self.fail(
                N_("%(name)s must be at least %(minimum)s"),
                *where,
                key,
                name=key,
                minimum=kw["minimum"],
            )
        if "maximum" in kw and value > kw["maximum"]:
            raise self.fail(
                N_("%(name)s must be at most %(maximum)s"),
                *where,
                key,
                name=key,
                maximum=kw["maximum"],
            )
        return float(value)

    def string(
        self,
        table: dict[str, Any],
        key: str,
        where: Where,
        *,
        pattern: re.Pattern[str] | None = None,
    ) -> str:
        value = table.get(key)
        if not isinstance(value, str) or (pattern is not None and not pattern.match(value)):
            message = N_("%(name)s must be a name") if pattern else N_("%(name)s must be a string")
            raise self.fail(message, *where, key, name=key)
        return value

    def list_of_tables(self, data: dict[str, Any], key: str) -> list[dict[str, Any]]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.fail(N_("%(name)s must be written as [[%(name)s]] tables"), key, name=key)
        return value

    def only_keys(self, table: dict[str, Any], allowed: set[str], where: Where) -> None:
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise self.fail(
                N_("unknown key '%(name)s'; use %(allowed)s"),
                *where,
                unknown[0],
                name=unknown[0],
                allowed=", ".join(sorted(allowed)),
            )
