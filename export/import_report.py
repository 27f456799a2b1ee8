"""What an import of contacts tells: each line's outcome (without personal data) and the
counts of the whole run, for the command line, the console and the API (``export.imports``).

A line's reasons are :class:`Note` s, message ids with values: the console shows them in
the staff member's language, the API in the request's; the command line and its
``--report`` file in English (``str``), as a log or a script reads them. Nothing of a
report is stored but its counts (the audit entry).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from leadvault import i18n
from leadvault.i18n import N_
from leadvault.refusals import RefusedRequest


class ImportRefused(RefusedRequest):
    """The import as a whole cannot run (unknown purpose, no consent text …)."""


@dataclasses.dataclass(frozen=True)
class Note:
    """One reason of a line's outcome: a message id (``N_``) with ``%(name)s`` values,
    never personal data. A value may be a Note itself (a capture check's message)."""

    message: str
    values: tuple[tuple[str, object], ...] = ()

    @classmethod
    def of(cls, message: str, **values: object) -> Note:
        return cls(message, tuple(sorted(values.items())))

    def text(self, lang: str | None) -> str:
        """In ``lang``; None: English."""
        text = self.message if lang is None else i18n.translate(lang, self.message)
        if not self.values:
            return text
        return text % {
            name: value.text(lang) if isinstance(value, Note) else value
            for name, value in self.values
        }

    def translated(self, lang: str | None = None) -> str:
        """In ``lang``, by default the request's language."""
        return self.text(lang or i18n.current_language())

    def __str__(self) -> str:
        return self.text(None)


def joined(notes: Iterable[Note], lang: str | None) -> str:
    """The notes as one text ("; " between them), in ``lang`` (None: English)."""
    return "; ".join(note.text(lang) for note in notes)


CONSENT_IMPORTED = N_("consent imported with proof: %(purposes)s")
REPERMISSION_QUEUED = N_("re-permission mail queued: %(purposes)s")


@dataclasses.dataclass(frozen=True)
class LineResult:
    """One line's outcome, without personal data: its number, what happened (``outcome``,
    a stable code: created, merged, refused), what became of its consent and why."""

    line: int
    outcome: str  # created, merged, refused
    consent_notes: tuple[Note, ...] = ()
    detail_notes: tuple[Note, ...] = ()

    @property
    def consent(self) -> str:
        """In English (the command line, the ``--report`` file)."""
        return joined(self.consent_notes, None)

    @property
    def detail(self) -> str:
        """In English (the command line, the ``--report`` file)."""
        return joined(self.detail_notes, None)

    def consent_translated(self, lang: str | None = None) -> str:
        """In ``lang``, by default the request's language (the console, the API)."""
        return joined(self.consent_notes, lang or i18n.current_language())

    def detail_translated(self, lang: str | None = None) -> str:
        """In ``lang``, by default the request's language (the console, the API)."""
        return joined(self.detail_notes, lang or i18n.current_language())

    def __str__(self) -> str:
        parts = [f"line {self.line}: {self.outcome}"]
        if self.consent:
            parts.append(self.consent)
        if self.detail:
            parts.append(self.detail)
        return "; ".join(parts)


@dataclasses.dataclass
class Report:
    batch: str
    dry_run: bool
    preset: str = ""
    mapping: list[str] = dataclasses.field(default_factory=list)
    ignored: list[str] = dataclasses.field(default_factory=list)
    lines: int = 0
    created: int = 0
    merged: int = 0
    refused: int = 0
    consent_imported: int = 0
    repermission: int = 0
    refused_lines: list[LineResult] = dataclasses.field(default_factory=list)

    def count(self, result: LineResult) -> None:
        self.lines += 1
        if result.outcome == "created":
            self.created += 1
        elif result.outcome == "merged":
            self.merged += 1
        else:
            self.refused += 1
            self.refused_lines.append(result)
        first = result.consent_notes[0].message if result.consent_notes else None
        if first == CONSENT_IMPORTED:
            self.consent_imported += 1
        elif first == REPERMISSION_QUEUED:
            self.repermission += 1

    def summary(self) -> str:
        verb = "would be" if self.dry_run else "were"
        return (
            f"{self.lines} lines: {self.created} {verb} created, {self.merged} merged, "
            f"{self.refused} refused; consent with proof for {self.consent_imported}, "
            f"re-permission mail for {self.repermission}."
        )

    def audit_detail(self) -> dict[str, object]:
        return {
            "batch": self.batch,
            "preset": self.preset,
            "dry_run": self.dry_run,
            "lines": self.lines,
            "created": self.created,
            "merged": self.merged,
            "refused": self.refused,
            "consent_imported": self.consent_imported,
            "repermission": self.repermission,
        }
