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
a dry run rolls every chunk back and reports the same outcomes. A chunk's lines
are stored by ``export.import_lines``, the outcomes are ``export.import_report``'s
and the re-permission mails ``export.repermissions``'; callers use the names here.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO

from sqlalchemy.orm import Session, sessionmaker

from consent import service as consent_service
from export import import_mapping
from export.import_lines import ImportRun, store_chunk
from export.import_mapping import MappingError
from export.import_report import ImportRefused, LineResult, Report
from export.repermissions import ask_text, send_repermissions
from leadvault import audit, i18n
from leadvault.db import settings_of, unit_of_work
from leadvault.i18n import N_

log = logging.getLogger("leadvault.export.imports")

AUDIT_ACTION = audit.Action.LEADS_IMPORTED
CHUNK = 200

__all__ = ["ImportRefused", "LineResult", "MappingError", "Report", "run", "send_repermissions"]


def check_purposes(session: Session, purposes: Iterable[str]) -> tuple[str, ...]:
    """The purposes to import or ask for; each needs a consent text to ask with."""
    chosen = tuple(dict.fromkeys(purposes))
    if not chosen:
        raise ImportRefused(N_("name at least one purpose (--purpose newsletter)"), field="purpose")
    known = consent_service.purpose_keys(session)
    for purpose in chosen:
        if purpose not in known:
            raise ImportRefused(
                N_("unknown purpose '%(purpose)s' (known: %(known)s)"),
                field="purpose",
                purpose=purpose,
                known=", ".join(sorted(known)),
            )
        if ask_text(session, purpose, i18n.DEFAULT_LANGUAGE) is None:
            raise ImportRefused(
                N_(
                    "purpose '%(purpose)s' has no consent text to ask with; "
                    "add one with `leadvault consent add-text`"
                ),
                field="purpose",
                purpose=purpose,
            )
    return chosen


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
        raise ImportRefused(
            N_("language must be one of %(known)s"),
            field="language",
            known=", ".join(i18n.LANGUAGES),
        )
    header, lines = import_mapping.read(source, encoding=encoding)
    columns = import_mapping.plan(header, preset=preset, overrides=overrides or {})
    with unit_of_work(factory) as session:
        chosen = check_purposes(session, purposes)
        zone = settings_of(session).zone
    state = ImportRun(secrets.token_hex(4), chosen, language, dry_run)
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
            results = store_chunk(session, state, chunk, columns, zone)
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
                    object_type=audit.ObjectType.LEADS,
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
