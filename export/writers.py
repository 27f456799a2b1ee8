"""Writing records as CSV, XLSX or NDJSON, chunk by chunk.

CSV comes in two dialects: ``excel`` (``,``, decimal point, no BOM: what
CRM importers and scripts expect) and ``excel-de`` (UTF-8 with BOM, ``;``,
decimal comma: what German Excel opens correctly). Text cells starting with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return get a leading ``'`` so
no spreadsheet runs them as a formula (CSV injection, ``export.csv_rows``).
XLSX is written with xlsxwriter in constant-memory mode (each row is flushed to
disk when the next begins), text always as text, never as a formula or link.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from export.columns import Kind
from export.csv_rows import _row_maker, neutralise
from export.fields import Field
from export.rows import Record

DIALECTS = ("excel", "excel-de")
FORMATS = ("csv", "xlsx", "ndjson")
BOM = "\ufeff"


def csv_header(fields: Sequence[Field], *, dialect: str = "excel") -> bytes:
    """The CSV file's first piece: the BOM (``excel-de``) and the header line."""
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}")
    german = dialect == "excel-de"
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";" if german else ",", lineterminator="\r\n")
    writer.writerow([neutralise(f.header) for f in fields])
    return ((BOM if german else "") + buffer.getvalue()).encode("utf-8")


def csv_lines(dialect: str, width: int = 0) -> Callable[[Iterable[list[str]]], bytes]:
    """A function writing rows of cell texts as CSV lines of ``dialect`` (encoded).

    With ``width`` (cells per row, 2 or more) the lines are the cells joined by the
    delimiter, when no cell holds the delimiter, a quote or a line break (the text
    then has exactly ``width - 1`` delimiters a row): what the csv module writes for
    them (it quotes only such cells), at a third of its cost; otherwise the csv module
    writes the rows."""
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}")
    buffer = io.StringIO()
    delimiter = ";" if dialect == "excel-de" else ","
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")

    def with_module(cells: Iterable[list[str]]) -> bytes:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(cells)
        return buffer.getvalue().encode("utf-8")

    if width < 2:  # a row of one empty cell is written as ""
        return with_module
    join = delimiter.join
    separators = width - 1

    def lines(cells: Iterable[list[str]]) -> bytes:
        rows = list(cells)
        text = "\r\n".join(map(join, rows)) + "\r\n"
        count = len(rows)
        if (
            text.count(delimiter) == separators * count
            and text.count("\n") == count
            and text.count("\r") == count
            and '"' not in text
        ):
            return text.encode("utf-8") if count else b""
        return with_module(rows)

    return lines


def csv_encoder(
    fields: Sequence[Field], *, dialect: str = "excel"
) -> Callable[[list[Record]], bytes]:
    """A function writing one chunk of records as CSV lines (encoded)."""
    lines = csv_lines(dialect, len(fields))
    row = _row_maker(fields, dialect == "excel-de")

    def encode(records: list[Record]) -> bytes:
        return lines(map(row, records))

    return encode


def csv_chunks(
    fields: Sequence[Field], chunks: Iterable[list[Record]], *, dialect: str = "excel"
) -> Iterator[bytes]:
    """The CSV file as encoded pieces: the header, then one piece per chunk."""
    encode = csv_encoder(fields, dialect=dialect)
    yield csv_header(fields, dialect=dialect)
    for records in chunks:
        yield encode(records)


def _json_value(raw: Any, kind: Kind) -> Any:
    if isinstance(raw, dt.datetime):
        return raw.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return raw


def ndjson_encoder(fields: Sequence[Field]) -> Callable[[list[Record]], bytes]:
    """A function writing one chunk of records as JSON lines (encoded)."""

    def encode(records: list[Record]) -> bytes:
        lines = [
            json.dumps(
                {f.header: _json_value(f.get(record), f.kind) for f in fields},
                ensure_ascii=False,
                separators=(",", ":"),
            )
            for record in records
        ]
        return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""

    return encode


def ndjson_chunks(fields: Sequence[Field], chunks: Iterable[list[Record]]) -> Iterator[bytes]:
    """One JSON object per line, keyed by header."""
    encode = ndjson_encoder(fields)
    for records in chunks:
        if piece := encode(records):
            yield piece


def write_xlsx(
    target: str | Path | IO[bytes],
    fields: Sequence[Field],
    chunks: Iterable[list[Record]],
    *,
    about: Callable[[int], Sequence[str]] | None = None,
) -> int:
    """Write the workbook; a second sheet "About" holds ``about(rows)``. Returns the row count."""
    import xlsxwriter

    workbook = xlsxwriter.Workbook(
        target,
        {
            "constant_memory": True,
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "strings_to_numbers": False,
            "remove_timezone": True,
        },
    )
    try:
        sheet = workbook.add_worksheet("Leads")
        bold = workbook.add_format({"bold": True})
        when = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        for col, field in enumerate(fields):
            sheet.write_string(0, col, field.header, bold)
        sheet.freeze_panes(1, 0)
        row = 0
        for records in chunks:
            for record in records:
                row += 1
                for col, field in enumerate(fields):
                    _xlsx_cell(sheet, row, col, field.get(record), field.kind, when=when)
        if about is not None:
            info = workbook.add_worksheet("About")
            for line_no, line in enumerate(about(row)):
                info.write_string(line_no, 0, line)
    finally:
        workbook.close()
    return row


def _xlsx_cell(sheet: Any, row: int, col: int, raw: Any, kind: Kind, *, when: Any) -> None:
    if raw is None:
        return
    if kind == Kind.NUMBER and isinstance(raw, int | float):
        sheet.write_number(row, col, raw)
    elif kind == Kind.DATETIME and isinstance(raw, dt.datetime):
        sheet.write_datetime(row, col, raw.astimezone(dt.UTC).replace(tzinfo=None), when)
    elif kind == Kind.BOOL:
        sheet.write_boolean(row, col, bool(raw))
    else:
        sheet.write_string(row, col, str(raw))
