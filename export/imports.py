"""Contacts in from another tool (a CSV file): `leadvault import` and the console upload.

Each line is one contact. Its address is checked like a form's; an address
that was erased (suppressed) is refused; a known address (by blind index,
from an earlier import, a form or an earlier line) is **merged**: imported
values fill the fields the lead has no value for, never overwrite one.

Consent comes only with **proof** (the columns ``optin_at``, ``optin_source``
and ``optin_text``): then the purposes are granted as of the original opt-in,
the text the contact agreed to is kept (a consent text of language
``imported``, shared by every line with the same text) and the ledger gets a
``confirmed`` entry naming the import, the time and the source. Without proof
the contact is stored unconfirmed and waits in ``import_repermissions`` for a
re-permission mail (double opt-in), which the worker sends at most
LEADVAULT_IMPORT_REPERMISSION_PER_HOUR an hour (:func:`send_repermissions`).
A purpose the lead withdrew is never granted or asked for again.

Imported consent sends no ``purpose_confirmed`` signal: the contact confirmed
long ago elsewhere, and welcome mails or nurture sequences for a whole
imported list would be mail nobody asked for today.

:func:`run` is the job boundary: lines go in chunks, one transaction each,
every line in a savepoint of its own, so a bad line never aborts the good ones;
a dry run rolls every chunk back and reports the same outcomes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import secrets
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import IO

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload, sessionmaker

from consent import ledger
from consent import service as consent_service
from consent.models import Consent, ConsentStatus, ConsentText, LedgerEvent, Suppression
from export import import_mapping
from export.import_mapping import Contact, LineProblem, MappingError
from export.models import ImportPermission
from leadvault import audit, batch, clock, i18n, leads
from leadvault.crypto import Vault, sha256_hex
from leadvault.db import dialect_of, settings_of, unit_of_work, vault_of
from leadvault.models import Lead
from leadvault.web import RequestMeta

log = logging.getLogger("leadvault.export.imports")

IMPORTED_LANGUAGE = "imported"
AUDIT_ACTION = "leads.imported"
CHUNK = 200
REPERMISSION_JOB_SECONDS = 60.0
REPERMISSION_MAIL = consent_service.OptInMail(
    template="export/mail/repermission", subject=i18n.N_("Do you still want to hear from us?")
)
# Requested rows are kept this long (the hourly count needs the last hour only).
_KEEP_REQUESTED = dt.timedelta(days=1)

__all__ = ["ImportRefused", "LineResult", "MappingError", "Report", "run", "send_repermissions"]


class ImportRefused(Exception):
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


@dataclasses.dataclass
class _Run:
    batch: str
    purposes: tuple[str, ...]
    language: str
    dry_run: bool
    # Blind index -> the first line with that address (duplicates within the file).
    seen: dict[bytes, int] = dataclasses.field(default_factory=dict)
    texts: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)


def check_purposes(session: Session, purposes: Iterable[str]) -> tuple[str, ...]:
    """The purposes to import or ask for; each needs a consent text to ask with."""
    chosen = tuple(dict.fromkeys(purposes))
    if not chosen:
        raise ImportRefused("name at least one purpose (--purpose newsletter)")
    known = consent_service.purpose_keys(session)
    for purpose in chosen:
        if purpose not in known:
            raise ImportRefused(f"unknown purpose {purpose!r} (known: {', '.join(sorted(known))})")
        if _ask_text(session, purpose, i18n.DEFAULT_LANGUAGE) is None:
            raise ImportRefused(
                f"purpose {purpose!r} has no consent text to ask with; "
                "add one with `leadvault consent add-text`"
            )
    return chosen


def _ask_text(session: Session, purpose: str, language: str) -> ConsentText | None:
    """The text a re-permission mail asks with: the lead's language, else any current one."""
    for lang in (language, i18n.DEFAULT_LANGUAGE, *i18n.LANGUAGES):
        text = consent_service.latest_text(session, purpose, lang)
        if text is not None:
            return text
    return None


def run(
    factory: sessionmaker[Session],
    source: IO[bytes],
    *,
    purposes: Sequence[str],
    preset: str = "auto",
    overrides: Mapping[str, str] | None = None,
    language: str = i18n.DEFAULT_LANGUAGE,
    encoding: str = "utf-8",
    dry_run: bool = False,
    actor: str,
    ip: str | None = None,
    on_line: Callable[[LineResult], None] | None = None,
    chunk_size: int = CHUNK,
) -> Report:
    """Import ``source``; MappingError or ImportRefused when it cannot start at all.

    The run is one entry in the audit trail (``leads.imported``, also a dry run:
    it tells which addresses are known), with its counts, written at the end
    or when the run breaks off after some chunks were stored.
    """
    if language not in i18n.LANGUAGES:
        raise ImportRefused(f"language must be one of {', '.join(i18n.LANGUAGES)}")
    header, lines = import_mapping.read(source, encoding=encoding)
    columns = import_mapping.plan(header, preset=preset, overrides=overrides or {})
    with unit_of_work(factory) as session:
        chosen = check_purposes(session, purposes)
        zone = settings_of(session).zone
    state = _Run(secrets.token_hex(4), chosen, language, dry_run)
    report = Report(
        state.batch,
        dry_run,
        preset=columns.preset,
        mapping=columns.describe(header),
        ignored=list(columns.ignored),
    )
    chunk: list[import_mapping.RawLine] = []

    def flush() -> None:
        session = factory()
        try:
            results = _chunk(session, state, chunk, columns, zone)
            if dry_run:
                session.rollback()
            else:
                session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
        chunk.clear()
        for result in results:
            report.count(result)
            if on_line is not None:
                on_line(result)

    completed = False
    try:
        for raw in lines:
            chunk.append(raw)
            if len(chunk) >= chunk_size:
                flush()
        if chunk:
            flush()
        completed = True
    finally:
        if completed or report.lines:
            with unit_of_work(factory) as session:
                audit.record(
                    session,
                    actor=actor,
                    action=AUDIT_ACTION,
                    object_type="leads",
                    object_id=state.batch,
                    detail={
                        **report.audit_detail(),
                        "purposes": list(chosen),
                        "completed": completed,
                    },
                    ip=ip,
                )
    log.info("import %s: %s", state.batch, report.summary())
    return report


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


def _chunk(
    session: Session,
    state: _Run,
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
    state: _Run,
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
    state: _Run,
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


def _store(session: Session, state: _Run, line: _Line, known: _Known) -> LineResult:
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


def _predict(state: _Run, line: _Line, known: _Known) -> LineResult:
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
    state: _Run,
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
    session: Session, state: _Run, known: _Known, purpose: str, text: str
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
    state: _Run,
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


# --- the worker's job: re-permission mails, rate-limited ------------------------------


def send_repermissions(session: Session) -> int:
    """Queue the next re-permission mails, at most LEADVAULT_IMPORT_REPERMISSION_PER_HOUR
    in any hour and spread over it (one run a minute); returns how many were queued."""
    per_hour = settings_of(session).import_repermission_per_hour
    now = clock.now()
    session.execute(
        sa.delete(ImportPermission).where(ImportPermission.requested_at < now - _KEEP_REQUESTED)
    )
    sent = session.scalar(
        sa.select(sa.func.count()).where(
            ImportPermission.requested_at >= now - dt.timedelta(hours=1)
        )
    )
    share = math.ceil(per_hour * REPERMISSION_JOB_SECONDS / 3600)
    allowance = min(per_hour - (sent or 0), share)
    if allowance <= 0:
        return 0
    query = (
        sa.select(ImportPermission)
        .where(ImportPermission.requested_at.is_(None))
        .order_by(ImportPermission.queued_at, ImportPermission.lead_id)
        .limit(allowance)
    )
    if dialect_of(session) == "postgresql":
        query = query.with_for_update(skip_locked=True)
    queued = 0
    for row in session.scalars(query).all():
        if _ask(session, row):
            row.requested_at = now
            queued += 1
        else:
            session.delete(row)
    session.flush()
    return queued


def _ask(session: Session, row: ImportPermission) -> bool:
    lead = leads.get(session, row.lead_id, for_update=True)
    if lead is None:
        return False
    current = consent_service.states(session, lead.id)
    asked = [p for p in row.purposes if p not in current or current[p].status == ConsentStatus.NONE]
    texts = {p: _ask_text(session, p, row.language) for p in asked}
    text_ids = {p: t.id for p, t in texts.items() if t is not None}
    if not text_ids:
        return False
    request = consent_service.request_consent(
        session,
        lead=lead,
        purposes_asked=list(text_ids),
        form=consent_service.FormRef(public_id=f"import:{row.batch}", text_ids=text_ids),
        language=row.language,
        meta=RequestMeta(),
        mail=REPERMISSION_MAIL,
    )
    return request is not None
