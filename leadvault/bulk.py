"""Many rows into one table in one go, without SQLAlchemy's and psycopg's per-row work.

``connection.execute(table.insert(), rows)`` builds, for every row, the compiled
statement's parameters (``construct_params``) and a second dict or tuple with each
value through its type's bind processor; on PostgreSQL psycopg's ``executemany``
then converts and prepares each row's parameters on its own (pipeline mode). For a
worker's batch (~10 rows a lead in six tables, ~17 timestamps) that was about a
tenth of the inbox stage's CPU on SQLite and a fifth on PostgreSQL.

Here the statement is compiled once per dialect and set of columns, and the same
bind processors are applied to the same values. SQLite gets the same SQL and the
same parameter tuples through one ``executemany`` (each tuple by ``itemgetter``).
PostgreSQL gets one INSERT whose VALUES list holds every row (``VALUES (…), (…)``,
in the rows' order, so serial ids and a chain's order follow the rows as before)
with PostgreSQL's numbered parameters on psycopg's raw cursor: one statement, its
values converted together (psycopg's C dumpers), its text prepared once per number
of rows (psycopg prepares a statement it sees repeatedly).
Everything runs through ``exec_driver_sql``: the engine's cursor events (the
read-only guard, SQLite's snapshot upgrade, statement counters) and SQLAlchemy's
error wrapping stay as they were.

A statement whose compiled form needs more than the rows give (a column's Python-side
default filled in per row, an expanding parameter, a RETURNING) goes through
SQLAlchemy as before, as does a single row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import operator
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

# PostgreSQL's limit is 65 535 parameters a statement; pages keep well below it.
MAX_PARAMETERS = 30_000
MAX_ROWS = 1000

_NAMED = re.compile(r"%\((\w+)\)s")
_VALUES = " VALUES "


@dataclasses.dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str  # SQLite: the statement; PostgreSQL: its text up to the VALUES list
    names: tuple[str, ...]  # the parameters in the statement's order
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]  # (position, processor)
    # PostgreSQL: one row of the VALUES list cut at its parameters ("(", "::UUID, ", …)
    # and what follows the list (ON CONFLICT …).
    row: tuple[str, ...] = ()
    tail: str = ""
    texts: dict[int, str] = dataclasses.field(default_factory=dict)  # rows -> statement

    def text_for(self, rows: int) -> str:
        """The statement for ``rows`` rows, its parameters numbered ($1, $2, …)."""
        text = self.texts.get(rows)
        if text is None:
            width = len(self.names)
            values = ", ".join(
                "".join(
                    f"{part}${row * width + index + 1}" if index < width else part
                    for index, part in enumerate(self.row)
                )
                for row in range(rows)
            )
            text = self.texts[rows] = f"{self.sql}{values}{self.tail}"
        return text


def insert_many(
    connection: sa.Connection, target: sa.Table | sa.Insert, rows: Sequence[dict[str, Any]]
) -> int:
    """``connection.execute(target.insert() or target, rows).rowcount``: every row names
    the same columns. Returns the rows the database wrote (an ON CONFLICT DO NOTHING
    skips some)."""
    return prepare(connection.dialect, target, rows).write(connection)


@dataclasses.dataclass(frozen=True, slots=True)
class BoundRows:
    """Rows bound for one table's INSERT (:func:`prepare`), to be written by :meth:`write`.

    Binding (timestamps to text, UUIDs, JSON …) is most of a bulk write's Python work;
    done apart, it can run before a SQLite transaction takes the write lock (at its
    first write: ``leadvault.batch``), so that only the executemany runs under it."""

    statement: sa.Insert
    compiled: _Compiled | None
    # The rows' parameter tuples in the statement's order, or (compiled None) the rows.
    params: Sequence[Any]

    def write(self, connection: sa.Connection) -> int:
        """Execute the INSERT; the rows the database wrote."""
        compiled, statement = self.compiled, self.statement
        if compiled is None:
            return connection.execute(statement, list(self.params)).rowcount
        # The statement's options too (preserve_rowcount: the INSERT of new leads counts).
        options = statement.get_execution_options()
        if not compiled.row:
            return connection.exec_driver_sql(compiled.sql, self.params, options).rowcount
        written = 0
        page = max(1, min(MAX_ROWS, MAX_PARAMETERS // len(compiled.names)))
        with _raw_cursors(connection):
            for start in range(0, len(self.params), page):
                chunk = self.params[start : start + page]
                flat = tuple(value for values in chunk for value in values)
                sql = compiled.text_for(len(chunk))
                written += connection.exec_driver_sql(sql, flat, options).rowcount
        return written


def prepare(
    dialect: Dialect, target: sa.Table | sa.Insert, rows: Sequence[dict[str, Any]]
) -> BoundRows:
    """:func:`insert_many`'s rows bound for ``dialect``, not yet written (see
    :class:`BoundRows`). The rows' values are read now: change none before writing."""
    statement = target.insert() if isinstance(target, sa.Table) else target
    compiled = _compile(target, dialect, frozenset(rows[0])) if len(rows) > 1 else None
    if compiled is None:
        return BoundRows(statement, None, list(rows))
    get = operator.itemgetter(*compiled.names)
    params: list[tuple[Any, ...]] = []
    if compiled.processors:
        for row in rows:
            values = list(get(row))
            for position, processor in compiled.processors:
                values[position] = processor(values[position])
            params.append(tuple(values))
    else:
        params = [get(row) for row in rows]
    return BoundRows(statement, compiled, params)


@contextlib.contextmanager
def _raw_cursors(connection: sa.Connection) -> Iterator[None]:
    """psycopg's raw cursors for the block: the statement's parameters are PostgreSQL's
    own ($1, $2, …), sent as they are. Its usual cursor parses a statement for %s
    placeholders at every execution once it has more than 50 parameters (not cached),
    which took more CPU than the rows' SQLAlchemy and psycopg work it saves."""
    import psycopg

    driver: Any = connection.connection.driver_connection
    usual = driver.cursor_factory
    driver.cursor_factory = psycopg.RawCursor
    try:
        yield
    finally:
        driver.cursor_factory = usual


@functools.lru_cache(maxsize=256)
def _compile(
    target: sa.Table | sa.Insert, dialect: Dialect, keys: frozenset[str]
) -> _Compiled | None:
    """The statement compiled for ``dialect`` with ``keys`` as its parameters; None
    when SQLAlchemy must execute it (see the module's docstring)."""
    statement = target.insert() if isinstance(target, sa.Table) else target
    # As SQLAlchemy compiles it for an executemany (no implicit RETURNING of the key).
    compiled: Any = statement.compile(
        dialect=dialect, column_keys=sorted(keys), for_executemany=True
    )
    if (
        compiled.insert_prefetch
        or compiled.update_prefetch
        or compiled.returning
        or compiled.literal_execute_params
        or compiled.post_compile_params
        or compiled.escaped_bind_names
        or compiled.schema_translate_map
    ):
        return None
    binds = {name: bind for bind, name in compiled.bind_names.items()}
    if set(binds) != keys or not all(bind.required for bind in binds.values()):
        return None  # a parameter the rows do not give, or a value of the statement's own
    if len(binds) < 2:
        return None  # itemgetter of one name gives the value, not a tuple
    text: str = compiled.string
    row: tuple[str, ...] = ()
    tail = ""
    if compiled.positional:
        if dialect.paramstyle != "qmark":
            return None
        names = tuple(compiled.positiontup)
    else:
        if dialect.driver != "psycopg" or dialect.paramstyle != "pyformat":
            return None
        split = _values_list(text)
        if split is None:
            return None
        text, values, tail = split
        if "%" in text + tail + _NAMED.sub("", values) or "$" in text + values + tail:
            return None  # a percent sign that is not a parameter (escaped as %%), a $
        names = tuple(_NAMED.findall(values))
        row = tuple(_NAMED.split(values)[::2])
    if sorted(names) != sorted(binds):
        return None  # a parameter twice, or outside the VALUES list
    processors = []
    for position, name in enumerate(names):
        processor = binds[name].type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            processors.append((position, processor))
    return _Compiled(text, names, tuple(processors), row, tail)


def _values_list(text: str) -> tuple[str, str, str] | None:
    """``INSERT … VALUES (…) [tail]`` cut into (head up to VALUES, "(…)", tail)."""
    at = text.find(_VALUES + "(")
    if at < 0 or text.find(_VALUES, at + 1) >= 0:
        return None
    start = at + len(_VALUES)
    depth = 0
    for index in range(start, len(text)):
        char = text[index]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return text[:start], text[start : index + 1], text[index + 1 :]
        elif char == "'":
            return None  # a quoted literal: not cut by counting parentheses
    return None
