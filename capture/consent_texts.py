"""Which forms show which consent text version, and moving forms to a new version.

A form pins the exact text versions it shows (``Form.consent_texts``), so a
submission's proof names what the visitor read. When marketing publishes a new
version, the forms that show an older one of the same purpose and language move
to it (unless told not to): new submissions get the new text, old proofs keep
theirs.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from capture.models import Form
from consent.models import ConsentText


def forms_by_text(session: Session, text_ids: set[int] | None = None) -> dict[int, list[Form]]:
    """Text id -> the forms (archived ones too) that show it, oldest first."""
    found: dict[int, list[Form]] = {}
    for form in session.scalars(sa.select(Form).order_by(Form.id)):
        for by_purpose in (form.consent_texts or {}).values():
            for text_id in by_purpose.values():
                if text_ids is None or text_id in text_ids:
                    found.setdefault(text_id, []).append(form)
    return found


def adopt_text(session: Session, text: ConsentText) -> list[str]:
    """Move the active forms showing an older version of ``text``'s purpose in its
    language to ``text``; returns their public ids."""
    older = set(
        session.scalars(
            sa.select(ConsentText.id).where(
                ConsentText.purpose == text.purpose,
                ConsentText.language == text.language,
                ConsentText.version < text.version,
            )
        )
    )
    moved = []
    for form in session.scalars(sa.select(Form).where(Form.active.is_(True)).order_by(Form.id)):
        shown = (form.consent_texts or {}).get(text.language, {})
        if shown.get(text.purpose) in older:
            # A new dict: the JSON column notices a replaced value, not a mutated one.
            form.consent_texts = {
                **form.consent_texts,
                text.language: {**shown, text.purpose: text.id},
            }
            moved.append(form.public_id)
    session.flush()
    return moved


def on_text_published(session: Session, *, text: ConsentText, adopt: bool, **_: Any) -> list[str]:
    return adopt_text(session, text) if adopt else []
