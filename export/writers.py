"""Writing records as CSV, XLSX or NDJSON, chunk by chunk.

CSV comes in two dialects: ``excel`` (``,``, decimal point, no BOM: what
CRM importers and scripts expect) and ``excel-de`` (UTF-8 with BOM, ``;``,
decimal comma: what German Excel opens correctly). Text cells starting with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return get a leading ``'`` so
no spreadsheet runs them as a formula (CSV injection). XLSX is written with
xlsxwriter in constant-memory mode (each row is flushed to disk when the next
begins), text always as text, never as a formula or link.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from export.columns import Column, Kind, Source
from export.rows import Record, getter, stamp_text

DIALECTS = ("excel", "excel-de")
FORMATS = ("csv", "xlsx", "ndjson")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"


@dataclasses.dataclass(frozen=True)
class Field:
    """One output column: its header, its kind and how to read it from a record."""

    header: str
    kind: Kind
    get: Callable[[Record], Any]
    # The column it shows, when it is one of ``export.columns``' (not a preset's own
    # field): the CSV writer then reads and formats the cell in one step.
    column: Column | None = None


def fields_of(columns: Sequence[Column]) -> list[Field]:
    return [Field(c.key, c.kind, getter(c), c) for c in columns]


def neutralise(text: str) -> str:
    """Keep a spreadsheet from reading a cell as a formula."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _datetime_text(moment: dt.datetime) -> str:
    if moment.tzinfo is not dt.UTC:
        moment = moment.astimezone(dt.UTC)
    # isoformat is several times faster than strftime, and this is once per date cell.
    return moment.isoformat(" ", "seconds")[:19]


def _csv_cell(raw: Any, kind: Kind, decimal_comma: bool) -> str:
    if raw is None:
        return ""
    if kind == Kind.NUMBER:
        text = f"{raw:g}" if isinstance(raw, float) else str(raw)
        return text.replace(".", ",") if decimal_comma else text
    if kind == Kind.DATETIME:
        return _datetime_text(raw) if isinstance(raw, dt.datetime) else str(raw)
    if kind == Kind.BOOL:
        return "true" if raw else "false"
    return neutralise(str(raw))


def _text_cell(raw: Any) -> str:
    if raw is None:
        return ""
    cell = raw if type(raw) is str else str(raw)
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def _when_cell(raw: Any) -> str:
    if raw is None:
        return ""
    if type(raw) is str:
        # The driver's text (``export.rows.Context.text_dates``).
        return stamp_text(raw)
    return _datetime_text(raw) if isinstance(raw, dt.datetime) else str(raw)


def _csv_formatter(field: Field, decimal_comma: bool) -> Callable[[Record], str]:
    """One function per column turning a record into its cell text: the kind and where
    the value is are looked at once per column, not once per cell (exports format
    millions of cells). A column of ``export.columns`` is read and formatted in one
    call (half the calls per cell of reading with its getter, then formatting)."""
    column = field.column
    kind = field.kind
    if column is not None and kind in {Kind.TEXT, Kind.LABEL, Kind.DATETIME}:
        cell = _when_cell if kind == Kind.DATETIME else _text_cell
        source, name = column.source, column.field
        if source in {Source.LEAD, Source.EMAIL}:
            key = column.key
            return lambda record: cell(record.get(key))
        if source == Source.ATTRIBUTE:
            return lambda record: cell(record.get(name))
        if source == Source.SCORE:
            return lambda record: cell(record["scores"].get(name))
        if source == Source.CONSENT and column.part == "date":

            def consent_date(record: Record) -> str:
                state = record["consents"].get(name)
                return "" if state is None or state.date is None else cell(state.date)

            return consent_date
        if source == Source.CONSENT and column.part == "":
            none = cell("none")

            def consent_status(record: Record) -> str:
                state = record["consents"].get(name)
                return none if state is None else cell(state.status)

            return consent_status
    if column is not None and column.source == Source.CONSENT and column.part == "version":
        name = column.field

        def consent_version(record: Record) -> str:
            state = record["consents"].get(name)
            return "" if state is None else _csv_cell(state.version, kind, decimal_comma)

        return consent_version
    get = field.get
    if kind in {Kind.TEXT, Kind.LABEL}:
        return lambda record: _text_cell(get(record))
    if kind == Kind.DATETIME:
        return lambda record: _when_cell(get(record))
    return lambda record: _csv_cell(get(record), kind, decimal_comma)


class Reading:
    """Where a generated row function (:func:`_row_maker`) finds a column's value: the
    source text of an expression per column, over the function's argument.

    The default reads a record (``export.rows.records``); ``export.direct`` reads the
    driver's row of a lead instead. ``prelude`` lines run first for each row (they may
    set names the expressions use), ``value`` gives a column's expression (None: the
    column's own formatter is called with ``arg``), ``consents`` the expression of the
    lead's consent states by purpose.
    """

    arg = "record"

    def __init__(self) -> None:
        self.prelude: list[str] = ["get = record.get"]
        self.names: dict[str, Any] = {}

    def value(self, column: Column) -> str | None:
        source = column.source
        if source in {Source.LEAD, Source.EMAIL}:
            return f"get({column.key!r})"
        if source == Source.ATTRIBUTE:
            return f"get({column.field!r})"
        if source == Source.SCORE:
            if 'scores = record["scores"]' not in self.prelude:
                self.prelude.append('scores = record["scores"]')
            return f"scores.get({column.field!r})"
        return None

    def consents(self) -> str:
        return 'record["consents"]'


def _row_maker(
    fields: Sequence[Field], decimal_comma: bool, reading: Reading | None = None
) -> Callable[[Any], list[str]]:
    """One function turning a record into its row of cell texts, written for this column
    list: every cell is an expression in it (the same cell functions as
    :func:`_csv_formatter`'s, so the same text), each consent state is looked up once
    per row, not once per cell. A function call per cell cost a fifth of the formatting
    (24 columns, millions of cells); dataclasses and namedtuple generate code the same
    way. Only column keys and field names (``repr``) go into the source, never a value.

    The common case of a cell is written out too (a text that needs no neutralising, a
    stored timestamp, an integer), the cell function called only for the rest: another
    call per cell was a tenth of the export's worker. ``reading``: what the function
    reads (a record by default, see :class:`Reading`)."""
    reading = reading if reading is not None else Reading()
    names: dict[str, Any] = {
        "T": _text_cell,
        "W": _when_cell,
        "K": _csv_cell,
        "DC": decimal_comma,
        "FS": _FORMULA_START,
        **reading.names,
    }
    prelude = reading.prelude
    states: dict[str, str] = {}

    def state(purpose: str) -> str:
        if not states:
            prelude.append(f"consents = {reading.consents()}")
        if purpose not in states:
            states[purpose] = f"s{len(states)}"
            prelude.append(f"{states[purpose]} = consents.get({purpose!r})")
        return states[purpose]

    def text(value: str) -> str:  # what _text_cell gives
        return f"(v if type(v := {value}) is str and not v.startswith(FS) else T(v))"

    def when(value: str) -> str:  # what _when_cell gives (stamp_text's slice of SQLite's text)
        return f'(v[:19] if type(v := {value}) is str and len(v) >= 19 and v[10] == " " else W(v))'

    point = '.replace(".", ",")' if decimal_comma else ""

    def number(value: str, kind: str) -> str:  # what _csv_cell gives
        return (
            f"(str(v) if type(v := {value}) is int"
            f' else f"{{v:g}}"{point} if type(v) is float else K(v, {kind}, DC))'
        )

    cells: list[str] = []
    for number_, field in enumerate(fields):
        column, kind = field.column, field.kind
        cell = when if kind == Kind.DATETIME else text
        source = column.source if column is not None else None
        simple = column is not None and kind in {Kind.TEXT, Kind.LABEL, Kind.DATETIME}
        value = (reading.value(column) if column is not None else None) or ""
        if simple and value:
            cells.append(cell(value))
        elif column is not None and value and kind == Kind.NUMBER:
            names[f"kind{number_}"] = kind
            cells.append(number(value, f"kind{number_}"))
        elif simple and source == Source.CONSENT and column.part == "date":  # type: ignore[union-attr]
            var = state(column.field)  # type: ignore[union-attr]
            cells.append(f'("" if {var} is None else {cell(f"{var}.date")})')
        elif simple and source == Source.CONSENT and column.part == "":  # type: ignore[union-attr]
            var = state(column.field)  # type: ignore[union-attr]
            names[f"none{number_}"] = _text_cell("none") if cell is text else _when_cell("none")
            cells.append(f"(none{number_} if {var} is None else {cell(f'{var}.status')})")
        elif source == Source.CONSENT and column.part == "version":  # type: ignore[union-attr]
            var = state(column.field)  # type: ignore[union-attr]
            names[f"kind{number_}"] = kind
            cells.append(f'("" if {var} is None else {number(f"{var}.version", f"kind{number_}")})')
        elif column is not None and value:  # a value of another kind (BOOL)
            names[f"f{number_}"] = lambda raw, kind=kind: _csv_cell(raw, kind, decimal_comma)
            cells.append(f"f{number_}({value})")
        else:
            names[f"f{number_}"] = _csv_formatter(field, decimal_comma)
            cells.append(f"f{number_}({reading.arg})")
    source_text = "\n".join(
        [
            f"def row({reading.arg}):",
            *(f"    {line}" for line in prelude),
            "    return [",
            *(f"        {c}," for c in cells),
            "    ]",
        ]
    )
    exec(compile(source_text, "<export.writers row>", "exec"), names)  # noqa: S102
    return names["row"]  # type: ignore[no-any-return]


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
