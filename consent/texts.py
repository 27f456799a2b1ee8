"""Consent texts as marketing manages them: each purpose with its versions per
language, a new version (published versions never change: the ledger names
them), and the difference between two versions, word by word.

The command line (``leadvault consent texts`` / ``add-text``), the admin API and
the console call these same functions. Plain functions taking a session; they
flush, never commit.
"""

from __future__ import annotations

import dataclasses
import difflib
import re

import sqlalchemy as sa
from sqlalchemy.orm import Session

from consent import service
from consent.models import ConsentText, Purpose
from leadvault import i18n, signals

# Versions shown per purpose and language (the newest); older ones stay in the ledger's proofs.
MAX_VERSIONS = 50


@dataclasses.dataclass(frozen=True)
class PurposeTexts:
    purpose: Purpose
    # language -> versions, newest first (at most MAX_VERSIONS)
    versions: dict[str, list[ConsentText]]

    def current(self, lang: str) -> ConsentText | None:
        found = self.versions.get(lang) or []
        return found[0] if found else None


@dataclasses.dataclass(frozen=True)
class DiffPart:
    kind: str  # "same", "added" or "removed"
    text: str


@dataclasses.dataclass(frozen=True)
class Published:
    text: ConsentText
    previous: ConsentText | None
    diff: list[DiffPart]
    forms_moved: list[str]  # public ids of the forms that now show the new version


def overview(
    session: Session, *, purpose: str | None = None, per_language: int = MAX_VERSIONS
) -> list[PurposeTexts]:
    """Every purpose (or one) with its newest versions per language."""
    query = sa.select(Purpose).order_by(Purpose.key)
    if purpose is not None:
        query = query.where(Purpose.key == purpose)
    found = list(session.scalars(query))
    if not found:
        return []
    ranked = (
        sa.select(
            ConsentText.id,
            sa.func.row_number()
            .over(
                partition_by=(ConsentText.purpose, ConsentText.language),
                order_by=ConsentText.version.desc(),
            )
            .label("rank"),
        )
        .where(ConsentText.purpose.in_([p.key for p in found]))
        .subquery()
    )
    rows = session.scalars(
        sa.select(ConsentText)
        .join(ranked, ranked.c.id == ConsentText.id)
        .where(ranked.c.rank <= per_language)
        .order_by(ConsentText.purpose, ConsentText.language, ConsentText.version.desc())
    )
    versions: dict[str, dict[str, list[ConsentText]]] = {
        p.key: {lang: [] for lang in i18n.LANGUAGES} for p in found
    }
    for row in rows:
        versions[row.purpose].setdefault(row.language, []).append(row)
    return [PurposeTexts(p, versions[p.key]) for p in found]


def previous_of(session: Session, text: ConsentText) -> ConsentText | None:
    return session.scalars(
        sa.select(ConsentText)
        .where(
            ConsentText.purpose == text.purpose,
            ConsentText.language == text.language,
            ConsentText.version < text.version,
        )
        .order_by(ConsentText.version.desc())
        .limit(1)
    ).first()


def preview(session: Session, *, purpose: str, language: str, text: str) -> list[DiffPart]:
    """What publishing ``text`` would change, word by word (refused as publishing would be)."""
    current = service.check_text(session, purpose=purpose, language=language, text=text)
    return diff(current.text if current else "", service.normalise_text(text))


def publish(
    session: Session, *, purpose: str, language: str, text: str, adopt: bool = True
) -> Published:
    """Add a new version; with ``adopt`` the forms showing an older one show it from now."""
    current = service.latest_text(session, purpose, language)
    row = service.add_text(session, purpose=purpose, language=language, text=text)
    moved: list[str] = []
    for _receiver, ids in signals.consent_text_published.send(session, text=row, adopt=adopt):
        moved += ids or []
    return Published(row, current, diff(current.text if current else "", row.text), moved)


_TOKENS = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)


def diff(old: str, new: str) -> list[DiffPart]:
    """Word-level difference of two texts, as runs of same, removed and added text."""
    before, after = _TOKENS.findall(old), _TOKENS.findall(new)
    parts: list[DiffPart] = []
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            parts.append(DiffPart("same", "".join(before[i1:i2])))
            continue
        if tag in ("replace", "delete"):
            parts.append(DiffPart("removed", "".join(before[i1:i2])))
        if tag in ("replace", "insert"):
            parts.append(DiffPart("added", "".join(after[j1:j2])))
    return parts
