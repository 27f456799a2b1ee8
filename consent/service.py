"""Consent logic: purposes and texts, consent states and suppression, withdrawal, erasure hooks.

The double opt-in (request, mail, confirmation) is in ``consent.optin``.

Plain functions taking a session; they flush, never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from consent import ledger
from consent.ledger import RequestMeta
from consent.models import (
    Consent,
    ConsentStatus,
    ConsentText,
    LedgerEvent,
    Purpose,
    Suppression,
)
from leadvault import batch, clock, i18n, leads, outbox, signals, untrusted
from leadvault.crypto import sha256_hex
from leadvault.db import vault_of
from leadvault.models import Lead
from leadvault.refusals import RefusedRequest

N_ = i18n.N_
# What pages and mails call the purposes and consent states.
PURPOSE_LABELS = {
    "newsletter": N_("Newsletter by email"),
    "whitepaper": N_("Delivery of the requested whitepaper"),
    "sales_contact": N_("Contact by our sales team"),
    "tracking": N_("Measuring how you use our website"),
}
STATE_LABELS = {
    ConsentStatus.NONE: N_("not given"),
    ConsentStatus.PENDING: N_("waiting for your confirmation"),
    ConsentStatus.GRANTED: N_("given"),
    ConsentStatus.WITHDRAWN: N_("withdrawn"),
}


def purpose_label(purpose: str, lang: str) -> str:
    """A purpose's name in ``lang`` (its key if it has none, e.g. one added later)."""
    label = PURPOSE_LABELS.get(purpose)
    return i18n.translate(lang, label) if label else purpose


class ConsentError(RefusedRequest):
    """A request the consent module refuses, with a message safe to show."""


class TextUnchanged(ConsentError):
    """A new version would say exactly what the current one says."""


# --- purposes and texts ------------------------------------------------------


def purposes(session: Session) -> list[Purpose]:
    return list(session.scalars(sa.select(Purpose).order_by(Purpose.key)))


def purpose_keys(session: Session) -> set[str]:
    return set(session.scalars(sa.select(Purpose.key)))


def latest_text(session: Session, purpose: str, language: str) -> ConsentText | None:
    return session.scalars(
        sa.select(ConsentText)
        .where(ConsentText.purpose == purpose, ConsentText.language == language)
        .order_by(ConsentText.version.desc())
        .limit(1)
    ).first()


def text_by_id(session: Session, text_id: int) -> ConsentText | None:
    return session.get(ConsentText, text_id)


MAX_TEXT_LENGTH = 4000


def normalise_text(text: str) -> str:
    """The wording as stored and hashed: browsers send CRLF, the hash must not differ."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def check_text(session: Session, *, purpose: str, language: str, text: str) -> ConsentText | None:
    """Refuse a new version that cannot be added (naming why); returns the current one."""
    if session.get(Purpose, purpose) is None:
        raise ConsentError(N_("Unknown purpose %(purpose)s."), purpose=repr(purpose))
    if language not in i18n.LANGUAGES:
        raise ConsentError(
            N_("The language must be one of %(languages)s."), languages=", ".join(i18n.LANGUAGES)
        )
    wording = normalise_text(text)
    if not wording:
        raise ConsentError(N_("The consent text is empty."))
    if len(wording) > MAX_TEXT_LENGTH:
        raise ConsentError(
            N_("The consent text may have at most %(count)s characters."), count=MAX_TEXT_LENGTH
        )
    if untrusted.staff_text_refused(wording):
        raise ConsentError(N_("The consent text may not hold control characters."))
    current = latest_text(session, purpose, language)
    if current is not None and current.text == wording:
        raise TextUnchanged(N_("The text is the same as the current version."))
    return current


def add_text(session: Session, *, purpose: str, language: str, text: str) -> ConsentText:
    """Add a new version; existing versions are never changed (they may be in use)."""
    current = check_text(session, purpose=purpose, language=language, text=text)
    version = current.version + 1 if current else 1
    wording = normalise_text(text)
    row = ConsentText(
        purpose=purpose,
        language=language,
        version=version,
        text=wording,
        sha256=sha256_hex(wording),
        created_at=clock.now(),
    )
    session.add(row)
    session.flush()
    return row


# --- state ---------------------------------------------------------------


def states(session: Session, lead_id: uuid.UUID) -> dict[str, Consent]:
    rows = session.scalars(sa.select(Consent).where(Consent.lead_id == lead_id))
    return {row.purpose: row for row in rows}


def has_consent(session: Session, lead_id: uuid.UUID, purpose: str) -> bool:
    row = session.get(Consent, (lead_id, purpose))
    return row is not None and row.status == ConsentStatus.GRANTED


def granted(session: Session, lead_ids: Iterable[uuid.UUID], purpose: str) -> set[uuid.UUID]:
    """Which of the leads have ``purpose`` granted (one query per 500 leads)."""
    ids = list(lead_ids)
    found: set[uuid.UUID] = set()
    for start in range(0, len(ids), 500):
        found.update(
            session.scalars(
                sa.select(Consent.lead_id).where(
                    Consent.lead_id.in_(ids[start : start + 500]),
                    Consent.purpose == purpose,
                    Consent.status == ConsentStatus.GRANTED,
                )
            )
        )
    return found


def is_suppressed(session: Session, email: str) -> bool:
    index = vault_of(session).blind_index(email)
    return session.get(Suppression, index) is not None


def lift_suppression(session: Session, email: str) -> None:
    """A new, self-initiated submission starts from nothing: the address may be stored again."""
    index = leads.email_index(session, email)
    work = batch.active(session)
    if work is not None and index in work.subjects:
        # One read for the worker's whole batch; a DELETE only where there is one.
        suppressed = batch.cached(
            session,
            "consent.suppressed",
            lambda: set(
                session.scalars(
                    sa.select(Suppression.email_index).where(
                        Suppression.email_index.in_(list(work.subjects))
                    )
                )
            ),
        )
        if index not in suppressed:
            return
    session.execute(sa.delete(Suppression).where(Suppression.email_index == index))


def withdraw(
    session: Session,
    lead_id: uuid.UUID,
    purposes_to_withdraw: Iterable[str],
    *,
    meta: RequestMeta,
    detail: str | None = None,
) -> list[str]:
    """Withdraw purposes; cancel their queued mails. Returns those that changed."""
    now = clock.now()
    changed: list[str] = []
    current = states(session, lead_id)
    for purpose in purposes_to_withdraw:
        state = current.get(purpose)
        if state is None or state.status not in {ConsentStatus.GRANTED, ConsentStatus.PENDING}:
            continue
        state.status = ConsentStatus.WITHDRAWN
        state.withdrawn_at = now
        ledger.append(
            session,
            event=LedgerEvent.WITHDRAWN,
            subject=str(lead_id),
            purpose=purpose,
            meta=meta,
            detail=detail,
        )
        outbox.cancel_pending(session, lead_id=lead_id, purpose=purpose)
        changed.append(purpose)
    session.flush()
    for purpose in changed:
        signals.purpose_withdrawn.send(session, lead_id=lead_id, purpose=purpose)
    return changed


def _on_lead_erasing(session: Session, *, lead_id: uuid.UUID, **_: object) -> None:
    """Keep only the keyed hash of the address and an erased entry in the ledger."""
    lead = session.get(Lead, lead_id)
    if lead is not None and session.get(Suppression, lead.email_index) is None:
        session.add(
            Suppression(email_index=lead.email_index, reason="erased", created_at=clock.now())
        )
    ledger.append(session, event=LedgerEvent.ERASED, subject=str(lead_id))


def connect_signals() -> None:
    signals.lead_erasing.connect(_on_lead_erasing)
