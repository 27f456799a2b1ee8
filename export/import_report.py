"""What an import of contacts tells: each line's outcome (without personal data) and the
counts of the whole run, for the command line, the console and the API (``export.imports``)."""

from __future__ import annotations

import dataclasses

from leadvault.refusals import RefusedRequest


class ImportRefused(RefusedRequest):
    """The import as a whole cannot run (unknown purpose, no consent text …)."""


@dataclasses.dataclass(frozen=True)
class LineResult:
    """One line's outcome, without personal data: its number, what happened, why."""

    line: int
    outcome: str  # created, merged, refused
    consent: str = ""
    detail: str = ""

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
        if result.consent.startswith("consent imported"):
            self.consent_imported += 1
        elif result.consent.startswith("re-permission"):
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
