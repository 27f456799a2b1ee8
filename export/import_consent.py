"""An import line's consent: which purposes it grants (with proof) or asks for by a
re-permission mail (``Plan``), the grant with its imported text and ledger entry, and the
queued re-permission (sent later by ``export.repermissions``).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from consent import ledger
from consent.models import Consent, ConsentStatus, ConsentText, LedgerEvent
from export import import_contact
from export.import_contact import Contact
from export.import_report import CONSENT_IMPORTED, REPERMISSION_QUEUED, Note
from export.import_state import ImportRun, Known
from export.models import ImportPermission
from leadvault import clock
from leadvault.crypto import sha256_hex
from leadvault.i18n import N_
from leadvault.web import RequestMeta

IMPORTED_LANGUAGE = "imported"
WITHDRAWN = N_("withdrawn earlier, not imported: %(purposes)s")
GIVEN = N_("consent already given")
PENDING = N_("opt-in already pending")


@dataclasses.dataclass(frozen=True)
class Plan:
    """Which purposes a line grants (with proof) or asks for (re-permission), and in words
    (the first note says what was done, ``Report.count`` counts by it)."""

    grant: list[str]
    ask: list[str]
    notes: tuple[Note, ...]

    @classmethod
    def of(cls, purposes: Sequence[str], current: Mapping[str, Consent], found: Contact) -> Plan:
        status = {p: current[p].status if p in current else ConsentStatus.NONE for p in purposes}
        withdrawn = [p for p in purposes if status[p] == ConsentStatus.WITHDRAWN]
        notes = (Note.of(WITHDRAWN, purposes=", ".join(withdrawn)),) if withdrawn else ()
        open_ = [
            p for p in purposes if status[p] not in {ConsentStatus.GRANTED, ConsentStatus.WITHDRAWN}
        ]
        if not open_:
            return cls([], [], notes or (Note(GIVEN),))
        if found.proof is not None:
            note = Note.of(CONSENT_IMPORTED, purposes=", ".join(open_))
            return cls(open_, [], (note, *notes))
        ask = [p for p in open_ if status[p] != ConsentStatus.PENDING]
        if not ask:
            return cls([], [], (Note(PENDING), *notes))
        return cls([], ask, (Note.of(REPERMISSION_QUEUED, purposes=", ".join(ask)), *notes))


def grant(
    session: Session,
    state: ImportRun,
    known: Known,
    *,
    lead_id: uuid.UUID,
    purpose: str,
    proof: import_contact.Proof,
    row: Consent | None,
) -> Consent:
    text = _imported_text(session, state, known, purpose, proof.text)
    if row is None:
        row = Consent(lead_id=lead_id, purpose=purpose)
        session.add(row)
    row.status = ConsentStatus.GRANTED
    row.text_id = text.id
    row.granted_at = proof.opted_in_at
    row.withdrawn_at = None
    detail = f"imported: opted in {proof.opted_in_at:%Y-%m-%dT%H:%M:%SZ}; source: {proof.source}"
    ledger.append(
        session,
        event=LedgerEvent.CONFIRMED,
        subject=str(lead_id),
        purpose=purpose,
        form_ref=f"import:{state.batch}",
        text=text,
        meta=RequestMeta(),
        detail=detail[:200],
    )
    # Consent with proof: no re-permission mail is waiting any more.
    waiting = known.permissions.pop(lead_id, None)
    if waiting is not None:
        session.delete(waiting)
    return row


def _imported_text(
    session: Session, state: ImportRun, known: Known, purpose: str, text: str
) -> ConsentText:
    """The text the contact agreed to elsewhere, stored once per purpose and wording."""
    digest = sha256_hex(text)
    text_id = state.texts.get((purpose, digest))
    if text_id is not None:
        row = known.texts.get(text_id) or session.get(ConsentText, text_id)
        if row is not None:
            known.texts[text_id] = row
            return row
    row = session.scalars(
        sa.select(ConsentText).where(
            ConsentText.purpose == purpose,
            ConsentText.language == IMPORTED_LANGUAGE,
            ConsentText.sha256 == digest,
        )
    ).first()
    if row is None:
        version = session.scalar(
            sa.select(sa.func.coalesce(sa.func.max(ConsentText.version), 0)).where(
                ConsentText.purpose == purpose, ConsentText.language == IMPORTED_LANGUAGE
            )
        )
        row = ConsentText(
            purpose=purpose,
            language=IMPORTED_LANGUAGE,
            version=(version or 0) + 1,
            text=text,
            sha256=digest,
            created_at=clock.now(),
        )
        session.add(row)
        session.flush()
    state.texts[(purpose, digest)] = row.id
    known.texts[row.id] = row
    return row


def queue_repermission(
    session: Session,
    state: ImportRun,
    known: Known,
    lead_id: uuid.UUID,
    *,
    language: str,
    purposes: list[str],
) -> None:
    row = known.permissions.get(lead_id)
    if row is not None and row.requested_at is None:
        row.purposes = sorted({*row.purposes, *purposes})
        return
    if row is not None:
        session.delete(row)
        session.flush()
    known.permissions[lead_id] = row = ImportPermission(
        lead_id=lead_id,
        purposes=list(purposes),
        language=language,
        batch=state.batch,
        queued_at=clock.now(),
    )
    session.add(row)
