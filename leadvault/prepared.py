"""Hot statements run on the driver's cursor, compiled once per dialect.

SQLAlchemy's execution of an already compiled, cached statement (the compiled cache
look-up, the execution context, the events, the result object) cost more CPU than
the driver's own work for the public submission's INSERTs. A :class:`Prepared`
statement is compiled once; :meth:`Prepared.bind` converts a run's parameters with
the same bind processors SQLAlchemy would apply (into the dialect's paramstyle:
psycopg's named ``%(name)s``, sqlite3's positional ``?``), and may do so before the
transaction begins: on SQLite, outside the write lock every writer queues for. The
:class:`Bound` statement then goes to the driver's cursor of the connection's current
transaction (its autocommit, or the test suite's savepoint). The engine's cursor
events run as for any statement (the read-only guard, the snapshot's upgrade,
statement counters). Driver errors come out as SQLAlchemy's (``IntegrityError``,
``connection_invalidated`` on a lost connection), so callers handle one kind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

_T = TypeVar("_T")


class Prepared:
    """``statement`` compiled for ``dialect``: its SQL text and its bind processors."""

    def __init__(self, statement: sa.Executable, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        # The parameters' names in the order of the SQL's markers (positional
        # paramstyles: sqlite3's qmark); None where the driver takes them by name.
        self._order: tuple[str, ...] | None = None
        if compiled.positional:
            if compiled.positiontup is None:
                raise ValueError(f"{dialect.name}+{dialect.driver}: no parameter order")
            self._order = tuple(compiled.positiontup)
        # The values the statement carries itself (a constant in it, a status it sets):
        # a run's parameters need not repeat them.
        self._constants = {
            name: bind.value
            for bind, name in compiled.bind_names.items()
            if not bind.required and bind.callable is None
        }
        self._processors: dict[str, Callable[[Any], Any]] = {}
        for bind, name in compiled.bind_names.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self._processors[name] = processor

    def bind(self, params: Mapping[str, Any]) -> Bound:
        """The statement with ``params`` converted for the driver: no database work,
        so it can run before the transaction (and its lock) begins. ``params`` holds
        every parameter the statement has no value of its own for."""
        values = {**self._constants, **params}
        for name, processor in self._processors.items():
            values[name] = processor(values[name])
        if self._order is not None:
            return Bound(self, tuple(values[name] for name in self._order))
        return Bound(self, values)

    def first(self, connection: sa.Connection, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Run with ``params`` on ``connection``'s driver connection; its first row, or None."""
        return self.bind(params).first(connection)


class Bound:
    """A :class:`Prepared` statement with its parameters converted for the driver."""

    __slots__ = ("statement", "values")

    def __init__(self, statement: Prepared, values: tuple[Any, ...] | dict[str, Any]) -> None:
        self.statement = statement
        self.values = values

    def first(self, connection: sa.Connection) -> tuple[Any, ...] | None:
        """Run on ``connection``'s driver connection; its first row, or None."""
        return self._run(connection, _first_row)

    def rowcount(self, connection: sa.Connection) -> int:
        """Run on ``connection``'s driver connection; the rows it wrote."""
        return self._run(connection, _rowcount)

    def all(self, connection: sa.Connection) -> list[tuple[Any, ...]]:
        """Run on ``connection``'s driver connection; every row it returned."""
        return self._run(connection, _all_rows)

    def _run(self, connection: sa.Connection, read: Callable[[Any], _T]) -> _T:
        dialect = connection.dialect
        dbapi_connection = connection.connection.dbapi_connection
        assert dbapi_connection is not None  # a connection in use is checked out
        cursor = dbapi_connection.cursor()
        sql, values = self.statement.sql, self.values
        try:
            for before in connection.dispatch.before_cursor_execute:
                sql, values = before(connection, cursor, sql, values, None, False)
            cursor.execute(sql, values)
            result = read(cursor)
            for after in connection.dispatch.after_cursor_execute:
                after(connection, cursor, sql, values, None, False)
            return result
        except dialect.loaded_dbapi.Error as exc:
            lost = dialect.is_disconnect(exc, dbapi_connection, cursor)
            if lost:
                connection.invalidate(exc)
            # Parameters hidden: they hold sealed payloads and addresses' blind indexes.
            raise sa.exc.DBAPIError.instance(
                sql,
                None,
                exc,
                dialect.loaded_dbapi.Error,
                hide_parameters=True,
                connection_invalidated=lost,
                dialect=dialect,
            ) from exc
        finally:
            cursor.close()


def _first_row(cursor: Any) -> tuple[Any, ...] | None:
    # psycopg's rownumber is None when the statement returned no rows to fetch (a look
    # at the result's status; description would build its columns); sqlite3's cursor
    # has none, and its fetchone gives None after a statement without rows.
    if getattr(cursor, "rownumber", 0) is None:
        return None
    return cursor.fetchone()


def _all_rows(cursor: Any) -> list[tuple[Any, ...]]:
    # As _first_row: psycopg has nothing to fetch after a statement without rows.
    if getattr(cursor, "rownumber", 0) is None:
        return []
    return list(cursor.fetchall())


def _rowcount(cursor: Any) -> int:
    return cursor.rowcount
