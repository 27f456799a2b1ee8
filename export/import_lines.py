"""The lines of an import, a chunk at a time: checked, then stored or (a dry run) predicted.

A known address is merged (imported values fill empty fields only); consent is
granted only with proof, else a re-permission mail is queued (sent later by
``export.repermissions``). ``export.imports.run`` drives the chunks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid
from collections.abc import Collection, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from consent import ledger
from consent import service as consent_service
from consent.models import Consent, ConsentStatus, ConsentText, LedgerEvent, Suppression
from export import import_mapping
from export.import_mapping import Contact, LineProblem
from export.import_report import LineResult
from export.models import ImportPermission
from leadvault import batch, clock, leads
from leadvault.crypto import Vault, sha256_hex
from leadvault.db import vault_of
from leadvault.models import Lead
from leadvault.web import RequestMeta

log = logging.getLogger("leadvault.export.imports")

IMPORTED_LANGUAGE = "imported"


@dataclasses.dataclass
class ImportRun:
    batch: str
    purposes: tuple[str, ...]
    language: str
    dry_run: bool
    # Blind index -> the first line with that address (duplicates within the file).
    seen: dict[bytes, int] = dataclasses.field(default_factory=dict)
    texts: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class _Line:
    """A line whose values passed the checks, with its address's blind index."""

    number: int
    contact: Contact
    index: bytes


def _parse(
    raw: import_mapping.RawLine,
    columns: import_mapping.ColumnMap,
    zone: dt.tzinfo,
    vault: Vault,
) -> _Line | LineResult:
    if raw.values is None:
        return LineResult(raw.number, "refused", detail=raw.problem or "unreadable")
    try:
        found = import_mapping.contact(raw.values, columns, zone=zone, now=clock.now())  # type: ignore[arg-type]
    except LineProblem as exc:
        return LineResult(raw.number, "refused", detail=str(exc))
    return _Line(raw.number, found, vault.blind_index(found.email))


@dataclasses.dataclass
class _Known:
    """What the database holds about a chunk's addresses, read with one query per table
    for the whole chunk (one per line made a large import mostly round trips), then kept
    up to date with what the chunk's own lines store."""

    suppressed: set[bytes]
    leads: dict[bytes, Lead]
    consents: dict[uuid.UUID, dict[str, Consent]]
    permissions: dict[uuid.UUID, ImportPermission]
    # Rows the chunk's lines refer to, held here: the session's identity map is weak.
    texts: dict[int, ConsentText] = dataclasses.field(default_factory=dict)

    @classmethod
    def read(cls, session: Session, indexes: Collection[bytes], *, lock: bool) -> _Known:
        wanted = list(indexes)
        suppressed = set(
            session.scalars(
                sa.select(Suppression.email_index).where(Suppression.email_index.in_(wanted))
            )
        )
        query = (
            sa.select(Lead)
            .where(Lead.email_index.in_(wanted))
            .options(selectinload(Lead.attributes))
            .order_by(Lead.id)  # locked in one order by every import
        )
        if lock:
            # As the worker locks a lead it stores a submission for: our decisions about
            # its consent hold until the chunk commits.
            query = query.with_for_update(of=Lead)
        found = {lead.email_index: lead for lead in session.scalars(query)}
        ids = [lead.id for lead in found.values()]
        consents: dict[uuid.UUID, dict[str, Consent]] = {lead_id: {} for lead_id in ids}
        permissions: dict[uuid.UUID, ImportPermission] = {}
        if ids:
            for row in session.scalars(sa.select(Consent).where(Consent.lead_id.in_(ids))):
                consents[row.lead_id][row.purpose] = row
            permissions = {
                row.lead_id: row
                for row in session.scalars(
                    sa.select(ImportPermission).where(ImportPermission.lead_id.in_(ids))
                )
            }
        return cls(suppressed, found, consents, permissions)


_SUPPRESSED = "the address was erased (suppressed): not imported"


def store_chunk(
    session: Session,
    state: ImportRun,
    lines: Sequence[import_mapping.RawLine],
    columns: import_mapping.ColumnMap,
    zone: dt.tzinfo,
) -> list[LineResult]:
    """The chunk's lines in order, stored (unless a dry run) in ``session``, uncommitted."""
    vault = vault_of(session)
    parsed = [_parse(raw, columns, zone, vault) for raw in lines]
    indexes = frozenset(item.index for item in parsed if isinstance(item, _Line))
    known = _Known.read(session, indexes, lock=not state.dry_run)
    if state.dry_run:
        return [
            item if isinstance(item, LineResult) else _predict(state, item, known)
            for item in parsed
        ]
    # First all lines together, in one savepoint: the chunk's new leads, their fields,
    # consents and re-permissions written by a few statements at its end (a batch, as the
    # worker's). Should the database refuse anything, that savepoint goes and the chunk
    # is stored again line by line, each line in a savepoint of its own.
    seen, texts = dict(state.seen), dict(state.texts)
    try:
        with session.begin_nested():
            return _store_all(session, state, parsed, known, subjects=indexes)
    except (sa.exc.SQLAlchemyError, batch.Conflict) as exc:
        log.info("import %s: chunk again line by line (%s)", state.batch, type(exc).__name__)
    state.seen, state.texts = seen, texts
    known = _Known.read(session, indexes, lock=True)
    return _store_all(session, state, parsed, known, subjects=None)


def _store_all(
    session: Session,
    state: ImportRun,
    parsed: Sequence[_Line | LineResult],
    known: _Known,
    *,
    subjects: frozenset[bytes] | None,
) -> list[LineResult]:
    """Store the lines; with ``subjects`` (their addresses' blind indexes) as one batch
    whose rows are written at its end (an error fails the whole), else isolated: each
    line in a savepoint, a failing line refused alone. Either way the ledger entries are
    chained at the batch's end, the head locked once, and written in one statement."""
    isolated = subjects is None
    work = batch.begin(session, subjects or frozenset(), isolated=isolated)
    results: list[LineResult] = []
    try:
        for position, item in enumerate(parsed):
            if isinstance(item, LineResult):
                results.append(item)
            elif item.index in known.suppressed:
                results.append(LineResult(item.number, "refused", detail=_SUPPRESSED))
            elif not isolated:
                results.append(_store(session, state, item, known))
            else:
                result, known = _store_alone(
                    session, state, parsed, position, work=work, known=known
                )
                results.append(result)
        batch.finish(session)
        session.flush()
    finally:
        batch.end(session)
    return results


def _store_alone(
    session: Session,
    state: ImportRun,
    parsed: Sequence[_Line | LineResult],
    position: int,
    *,
    work: batch.Batch,
    known: _Known,
) -> tuple[LineResult, _Known]:
    """The line at ``position`` in a savepoint of its own; its result, and what is known
    for the lines after it (read again when its savepoint was rolled back)."""
    item = parsed[position]
    assert isinstance(item, _Line)
    mark = work.mark()
    try:
        with session.begin_nested():
            result = _store(session, state, item, known)
            session.flush()  # its rows now, so that an error is its own
    except sa.exc.SQLAlchemyError as exc:
        # This line only (its savepoint is rolled back); the others go on. What was read
        # for the chunk may hold the rolled-back rows: read it again.
        work.rewind(mark)
        log.warning("import %s line %s: %s", state.batch, item.number, type(exc).__name__)
        rest = {i.index for i in parsed[position + 1 :] if isinstance(i, _Line)}
        refused = LineResult(item.number, "refused", detail=f"not stored ({type(exc).__name__})")
        return refused, _Known.read(session, rest, lock=True)
    return result, known


def _store(session: Session, state: ImportRun, line: _Line, known: _Known) -> LineResult:
    found = line.contact
    first_line = state.seen.setdefault(line.index, line.number)
    lead = known.leads.get(line.index)
    created = False
    if lead is None:
        lead, created = leads.get_or_create(
            session, found.email, language=found.language or state.language
        )
        known.leads[line.index] = lead
        if created:
            known.consents[lead.id] = {}
        else:  # stored meanwhile by a submission
            known.consents[lead.id] = consent_service.states(session, lead.id)
            permission = session.get(ImportPermission, lead.id)
            if permission is not None:
                known.permissions[lead.id] = permission
    stored = leads.attributes_of(session, lead) if not created else {}
    missing = {k: v for k, v in found.attributes.items() if not stored.get(k)}
    if missing:
        leads.set_attributes(session, lead, missing)
    current = known.consents[lead.id]
    plan = _Plan.of(state.purposes, current, found)
    for purpose in plan.grant:
        assert found.proof is not None
        current[purpose] = _grant(
            session,
            state,
            known,
            lead_id=lead.id,
            purpose=purpose,
            proof=found.proof,
            row=current.get(purpose),
        )
    if plan.ask:
        _queue_repermission(
            session, state, known, lead.id, language=lead.language, purposes=plan.ask
        )
    return _result(line.number, found, plan, created=created, first_line=first_line)


def _predict(state: ImportRun, line: _Line, known: _Known) -> LineResult:
    """A dry run's outcome, read only: what :func:`_store` would do."""
    if line.index in known.suppressed:
        return LineResult(line.number, "refused", detail=_SUPPRESSED)
    found = line.contact
    first_line = state.seen.setdefault(line.index, line.number)
    lead = known.leads.get(line.index)
    if lead is None and first_line != line.number:
        # The earlier line's lead exists in a real run (a dry run stores nothing).
        return LineResult(line.number, "merged", detail=f"same address as line {first_line}")
    current = known.consents.get(lead.id, {}) if lead is not None else {}
    plan = _Plan.of(state.purposes, current, found)
    return _result(line.number, found, plan, created=lead is None, first_line=first_line)


def _result(
    number: int, found: Contact, plan: _Plan, *, created: bool, first_line: int
) -> LineResult:
    if created:
        return LineResult(number, "created", plan.note, found.proof_missing or "")
    detail = f"same address as line {first_line}" if first_line != number else "known address"
    if found.proof_missing:
        detail += f"; {found.proof_missing}"
    return LineResult(number, "merged", plan.note, detail)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Which purposes a line grants (with proof) or asks for (re-permission), and in words."""

    grant: list[str]
    ask: list[str]
    note: str

    @classmethod
    def of(cls, purposes: Sequence[str], current: Mapping[str, Consent], found: Contact) -> _Plan:
        status = {p: current[p].status if p in current else ConsentStatus.NONE for p in purposes}
        withdrawn = [p for p in purposes if status[p] == ConsentStatus.WITHDRAWN]
        notes = [f"withdrawn earlier, not imported: {', '.join(withdrawn)}"] if withdrawn else []
        open_ = [
            p for p in purposes if status[p] not in {ConsentStatus.GRANTED, ConsentStatus.WITHDRAWN}
        ]
        if not open_:
            return cls([], [], "; ".join(notes) or "consent already given")
        if found.proof is not None:
            note = f"consent imported with proof: {', '.join(open_)}"
            return cls(open_, [], "; ".join([note, *notes]))
        ask = [p for p in open_ if status[p] != ConsentStatus.PENDING]
        if not ask:
            return cls([], [], "; ".join(["opt-in already pending", *notes]))
        note = f"re-permission mail queued: {', '.join(ask)}"
        return cls([], ask, "; ".join([note, *notes]))


def _grant(
    session: Session,
    state: ImportRun,
    known: _Known,
    *,
    lead_id: uuid.UUID,
    purpose: str,
    proof: import_mapping.Proof,
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
    session: Session, state: ImportRun, known: _Known, purpose: str, text: str
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


def _queue_repermission(
    session: Session,
    state: ImportRun,
    known: _Known,
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
