"""Turning records into rows of CSV cell texts: the cell rules, one formatter per column,
and the row function generated for a column list (``export.writers`` writes the rows).

Text cells starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return get a
leading ``'`` so no spreadsheet runs them as a formula (CSV injection).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from export.columns import Column, Kind, Source
from export.fields import Field
from export.rows import Record, stamp_text

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


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
    exec(compile(source_text, "<export.csv_rows row>", "exec"), names)  # noqa: S102
    return names["row"]  # type: ignore[no-any-return]
