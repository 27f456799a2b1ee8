"""Exports of a lead selection: CSV, XLSX or NDJSON, plain columns or a CRM preset.

Plain functions taking a session (a console view, the API and the CLI share
them). An export streams: :func:`stream` yields the file in pieces, chunk by
chunk from the database, so memory stays flat; XLSX is written to a file
(xlsxwriter's constant-memory mode) by :func:`write`. Each export is one
entry in the audit trail (``leadvault.audit``) with its filter and row count
(:func:`audited`), written after the stream in a transaction of its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from export import columns as columns_module
from export import direct, parallel, queries, rows, writers
from export import presets as presets_module
from export.columns import Column, ColumnError
from export.fields import Field, fields_of
from leadvault import audit
from leadvault.db import vault_of
from leadvault.i18n import N_
from leadvault.refusals import RefusedRequest

log = logging.getLogger("leadvault.export")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "ndjson": "application/x-ndjson",
}
MEDIA_TYPES = {format: value.partition(";")[0] for format, value in CONTENT_TYPES.items()}


class ExportError(RefusedRequest):
    """A request for an export that cannot be made; the message names the problem."""


@dataclasses.dataclass(frozen=True)
class Export:
    """What to write: the format, the fields, and which consent a lead needs to be in it."""

    format: str
    fields: tuple[Field, ...]
    columns: tuple[Column, ...]
    dialect: str = "excel"
    preset: presets_module.Preset | None = None

    @property
    def require(self) -> str | None:
        return self.preset.purpose if self.preset is not None else None

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]

    @property
    def prints_dates_only(self) -> bool:
        """Whether the writer only prints timestamps as they are stored (CSV of plain
        columns; a preset's fields and the other formats compute with them)."""
        return self.format == "csv" and self.preset is None

    def filename(self, stem: str = "leads") -> str:
        parts = [stem]
        if self.preset is not None:
            parts += [self.preset.name, f"{self.preset.purpose}-consent"]
        return "-".join(parts) + "." + self.format

    def about(self, *, rows: int, filters: str) -> list[str]:
        """What the file holds, for its "About" sheet."""
        if self.preset is not None:
            return self.preset.about(rows=rows, filters=filters)
        return [
            f"Leadvault export: {self.describe()}.",
            f"Leads: {rows}. Filter: {filters or 'none'}.",
        ]

    def describe(self) -> str:
        what = f"preset {self.preset.name}" if self.preset else f"{len(self.columns)} columns"
        dialect = f" {self.dialect}" if self.format == "csv" else ""
        return f"{self.format}{dialect}, {what}"


def prepare(
    session: Session,
    *,
    format: str = "csv",
    columns: str | Sequence[str] | None = None,
    preset: str | None = None,
    dialect: str = "excel",
) -> Export:
    """Check a request and say what it will write; ExportError names a bad part."""
    if format not in writers.FORMATS:
        raise ExportError(
            N_("format must be one of %(known)s"), field="format", known=", ".join(writers.FORMATS)
        )
    if dialect not in writers.DIALECTS:
        raise ExportError(
            N_("dialect must be one of %(known)s"),
            field="dialect",
            known=", ".join(writers.DIALECTS),
        )
    if preset is not None:
        if columns:
            raise ExportError(N_("a preset has its own columns; choose either"), field="preset")
        if preset not in presets_module.PRESETS:
            raise ExportError(
                N_("unknown preset '%(preset)s'; known: %(known)s"),
                field="preset",
                preset=preset,
                known=", ".join(presets_module.PRESETS),
            )
        chosen = presets_module.get(preset)
        return Export(format, chosen.fields, tuple(chosen.columns()), dialect, chosen)
    try:
        parsed = columns_module.parse(session, columns)
    except ColumnError as exc:
        raise ExportError(exc.message, field="columns", **exc.values) from None
    return Export(format, tuple(fields_of(parsed)), tuple(parsed), dialect)


def selection(
    *,
    stages: Sequence[str] = (),
    grades: Sequence[str] = (),
    purpose: str | None = None,
    created_from: dt.datetime | None = None,
    created_to: dt.datetime | None = None,
    lead_ids: Sequence[uuid.UUID] = (),
) -> tuple[sa.Select[Any], str]:
    """The selected lead ids, oldest first, and the filter in words (for the audit entry).

    Naive datetimes are UTC; ``created_to`` is exclusive.
    """
    from consent.models import Consent, ConsentStatus
    from leadvault.models import Lead
    from scoring.models import LeadScore

    query = sa.select(Lead.id).order_by(Lead.created_at, Lead.id)
    words: list[str] = []
    if stages or grades:
        query = query.join(LeadScore, LeadScore.lead_id == Lead.id)
    if stages:
        query = query.where(LeadScore.stage.in_(list(stages)))
        words.append(f"stage in {','.join(stages)}")
    if grades:
        query = query.where(LeadScore.fit_grade.in_(list(grades)))
        words.append(f"grade in {','.join(grades)}")
    if purpose:
        granted = sa.select(Consent.lead_id).where(
            Consent.purpose == purpose, Consent.status == ConsentStatus.GRANTED
        )
        query = query.where(Lead.id.in_(granted))
        words.append(f"{purpose} granted")
    if created_from:
        query = query.where(Lead.created_at >= _utc(created_from))
        words.append(f"created from {created_from:%Y-%m-%d}")
    if created_to:
        query = query.where(Lead.created_at < _utc(created_to))
        words.append(f"created before {created_to:%Y-%m-%d}")
    if lead_ids:
        query = query.where(Lead.id.in_(list(lead_ids)))
        words.append(f"{len(set(lead_ids))} leads chosen one by one")
    return query, "; ".join(words)


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


def count(session: Session, selection: sa.Select[Any]) -> int:
    """How many leads the selection holds (before a preset's consent filter)."""
    return queries.count(session, selection)


def _read(
    session: Session, selection: sa.Select[Any], export: Export, chunk_size: int
) -> tuple[rows.Context, Iterator[rows.Chunk]]:
    return rows.read(
        session,
        selection,
        export.columns,
        require=export.require,
        chunk_size=chunk_size,
        text_dates=export.prints_dates_only,
    )


def _chunks(
    session: Session,
    selection: sa.Select[Any],
    export: Export,
    *,
    tally: list[int],
    on_chunk: Callable[[int], None] | None,
    chunk_size: int,
) -> Iterator[list[rows.Record]]:
    context, chunks = _read(session, selection, export, chunk_size)
    vault = vault_of(session)
    for chunk in chunks:
        records = rows.records(chunk, context, vault)
        tally[0] += len(records)
        yield records
        if on_chunk is not None:
            on_chunk(len(records))


def _pieces(
    session: Session,
    selection: sa.Select[Any],
    export: Export,
    *,
    tally: list[int],
    on_chunk: Callable[[int], None] | None,
    chunk_size: int,
    workers: int,
) -> Iterator[bytes]:
    """The CSV or NDJSON file in pieces, each chunk's rows decrypted and formatted in
    this process or, with ``workers``, in worker processes (``export.parallel``)
    while this one reads on."""
    context, chunks = _read(session, selection, export, chunk_size)
    vault = vault_of(session)
    if export.format == "csv":
        encode = writers.csv_encoder(export.fields, dialect=export.dialect)
        yield writers.csv_header(export.fields, dialect=export.dialect)
    else:
        encode = writers.ndjson_encoder(export.fields)

    def encode_records(chunk: rows.Chunk) -> tuple[int, bytes]:
        records = rows.records(chunk, context, vault)
        return len(records), encode(records)

    encode_chunk = encode_records
    if export.format == "csv" and direct.applies(export.fields, context):
        # Plain columns: the rows straight from the driver's (the same bytes, no records).
        encode_chunk = direct.csv_encoder(export.fields, context, vault, dialect=export.dialect)

    def work(item: tuple[list[Any], list[Any], list[Any]]) -> tuple[int, bytes]:
        return encode_chunk(rows.Chunk(*item))

    # A chunk goes to a worker as a tuple of lists of the driver's rows: on SQLite
    # plain tuples, which ``export.parallel`` sends with marshal.
    items = ((chunk.leads, chunk.consents, chunk.submissions) for chunk in chunks)
    share = parallel.SHARE if workers == 1 else 0
    with contextlib.closing(
        parallel.ordered_map(work, items, workers=workers, share=share)
    ) as pieces:
        for written, piece in pieces:
            tally[0] += written
            if piece:
                yield piece
            if on_chunk is not None:
                on_chunk(written)


def stream(
    session: Session,
    selection: sa.Select[Any],
    export: Export,
    *,
    tally: list[int] | None = None,
    on_chunk: Callable[[int], None] | None = None,
    chunk_size: int = rows.CHUNK,
    workers: int = 0,
) -> Iterator[bytes]:
    """The CSV or NDJSON file in pieces; ``tally[0]`` counts the rows written so far.

    ``workers``: worker processes decrypting and formatting (``export.parallel``);
    none by default, as a web worker streaming a download must not fork.
    """
    if export.format == "xlsx":
        raise ExportError("XLSX is written to a file: use write()")
    return _pieces(
        session,
        selection,
        export,
        tally=tally if tally is not None else [0],
        on_chunk=on_chunk,
        chunk_size=chunk_size,
        workers=workers,
    )


def write(
    session: Session,
    selection: sa.Select[Any],
    export: Export,
    target: str | Path | IO[bytes],
    *,
    filters: str = "",
    on_chunk: Callable[[int], None] | None = None,
    chunk_size: int = rows.CHUNK,
    workers: int = 0,
) -> int:
    """Write the whole file to ``target`` (a path or a binary file); returns the row count.

    ``workers``: CSV and NDJSON are decrypted and formatted in that many worker
    processes (``export.parallel``; in this process if it cannot fork); XLSX always
    here (xlsxwriter writes one workbook).
    """
    tally = [0]
    if export.format == "xlsx":
        chunks = _chunks(
            session, selection, export, tally=tally, on_chunk=on_chunk, chunk_size=chunk_size
        )
        writers.write_xlsx(
            target, export.fields, chunks, about=lambda n: export.about(rows=n, filters=filters)
        )
        return tally[0]
    pieces = stream(
        session,
        selection,
        export,
        tally=tally,
        on_chunk=on_chunk,
        chunk_size=chunk_size,
        workers=workers,
    )
    with contextlib.closing(pieces):
        if isinstance(target, str | Path):
            with Path(target).open("wb") as handle:
                for piece in pieces:
                    handle.write(piece)
        else:
            for piece in pieces:
                target.write(piece)
    return tally[0]


def audited(
    session: Session,
    export: Export,
    *,
    actor: str,
    filters: str,
    rows_written: int,
    ip: str | None = None,
) -> None:
    """The export's one entry in the audit trail: who, what, which filter, how many rows."""
    audit.record(
        session,
        actor=actor,
        action=audit.Action.LEADS_EXPORTED,
        object_type=audit.ObjectType.LEADS,
        detail={
            "format": export.format,
            "dialect": export.dialect if export.format == "csv" else None,
            "preset": export.preset.name if export.preset is not None else None,
            "require": export.require,
            "columns": [column.key for column in export.columns][:60],
            "filter": filters or "none",
            "rows": rows_written,
        },
        ip=ip,
    )
    log.info("leads exported by %s: %s; rows: %s", actor, export.describe(), rows_written)
