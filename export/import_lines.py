"""The lines of an import, a chunk at a time: checked, then stored or (a dry run) predicted.

A known address is merged (imported values fill empty fields only); consent is
granted only with proof, else a re-permission mail is queued (both in
``export.import_consent``; the mail is sent later by ``export.repermissions``).
``export.imports.run`` drives the chunks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from consent import service as consent_service
from export import import_consent, import_contact, import_mapping
from export.import_contact import Contact, LineProblem
from export.import_report import LineResult, Note
from export.import_state import ImportRun, Known
from export.models import ImportPermission
from leadvault import batch, clock, leads
from leadvault.crypto import Vault
from leadvault.db import vault_of
from leadvault.i18n import N_

log = logging.getLogger("leadvault.export.imports")


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
        return LineResult(raw.number, "refused", detail_notes=(raw.problem or Note(UNREADABLE),))
    try:
        found = import_contact.contact(raw.values, columns, zone=zone, now=clock.now())  # type: ignore[arg-type]
    except LineProblem as exc:
        return LineResult(raw.number, "refused", detail_notes=(exc.note,))
    return _Line(raw.number, found, vault.blind_index(found.email))


UNREADABLE = N_("unreadable")
_SUPPRESSED = Note(N_("the address was erased (suppressed): not imported"))
KNOWN = N_("known address")
SAME_AS = N_("same address as line %(line)s")


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
    known = Known.read(session, indexes, lock=not state.dry_run)
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
    known = Known.read(session, indexes, lock=True)
    return _store_all(session, state, parsed, known, subjects=None)


def _store_all(
    session: Session,
    state: ImportRun,
    parsed: Sequence[_Line | LineResult],
    known: Known,
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
                results.append(LineResult(item.number, "refused", detail_notes=(_SUPPRESSED,)))
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
    known: Known,
) -> tuple[LineResult, Known]:
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
        refused = LineResult(
            item.number,
            "refused",
            detail_notes=(Note.of(N_("not stored (%(error)s)"), error=type(exc).__name__),),
        )
        return refused, Known.read(session, rest, lock=True)
    return result, known


def _store(session: Session, state: ImportRun, line: _Line, known: Known) -> LineResult:
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
    plan = import_consent.Plan.of(state.purposes, current, found)
    for purpose in plan.grant:
        assert found.proof is not None
        current[purpose] = import_consent.grant(
            session,
            state,
            known,
            lead_id=lead.id,
            purpose=purpose,
            proof=found.proof,
            row=current.get(purpose),
        )
    if plan.ask:
        import_consent.queue_repermission(
            session, state, known, lead.id, language=lead.language, purposes=plan.ask
        )
    return _result(line.number, found, plan, created=created, first_line=first_line)


def _predict(state: ImportRun, line: _Line, known: Known) -> LineResult:
    """A dry run's outcome, read only: what :func:`_store` would do."""
    if line.index in known.suppressed:
        return LineResult(line.number, "refused", detail_notes=(_SUPPRESSED,))
    found = line.contact
    first_line = state.seen.setdefault(line.index, line.number)
    lead = known.leads.get(line.index)
    if lead is None and first_line != line.number:
        # The earlier line's lead exists in a real run (a dry run stores nothing).
        return LineResult(line.number, "merged", detail_notes=(Note.of(SAME_AS, line=first_line),))
    current = known.consents.get(lead.id, {}) if lead is not None else {}
    plan = import_consent.Plan.of(state.purposes, current, found)
    return _result(line.number, found, plan, created=lead is None, first_line=first_line)


def _result(
    number: int, found: Contact, plan: import_consent.Plan, *, created: bool, first_line: int
) -> LineResult:
    missing = (found.proof_missing,) if found.proof_missing else ()
    if created:
        return LineResult(number, "created", plan.notes, missing)
    known = Note.of(SAME_AS, line=first_line) if first_line != number else Note(KNOWN)
    return LineResult(number, "merged", plan.notes, (known, *missing))
