"""Hot statements run on the driver's cursor, compiled once per dialect.

SQLAlchemy's execution of an already compiled, cached statement (the compiled cache
look-up, the execution context, the events, the result object) cost more CPU than
the driver's own work for the public submission's one INSERT on PostgreSQL. A
:class:`Prepared` statement is compiled once; each run converts its parameters with
the same bind processors SQLAlchemy would apply, and hands the SQL to the driver's
cursor of the connection's current transaction (its autocommit, or the test suite's
savepoint). Driver errors come out as SQLAlchemy's (``IntegrityError``,
``connection_invalidated`` on a lost connection), so callers handle one kind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class Prepared:
    """``statement`` compiled for ``dialect``: its SQL text and its bind processors."""

    def __init__(self, statement: sa.Executable, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if compiled.positional:
            # Named parameters only (psycopg's %(name)s): the one driver this serves.
            raise ValueError(f"{dialect.name}+{dialect.driver} uses positional parameters")
        self.sql = compiled.string
        self._processors: dict[str, Callable[[Any], Any]] = {}
        for bind, name in compiled.bind_names.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self._processors[name] = processor

    def first(self, connection: sa.Connection, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Run on ``connection``'s driver connection; its first row, or None.

        The engine's cursor events run as for any statement (the read-only guard,
        statement counters)."""
        values = dict(params)
        for name, processor in self._processors.items():
            values[name] = processor(values[name])
        dbapi_connection = connection.connection.dbapi_connection
        assert dbapi_connection is not None  # a connection in use is checked out
        cursor = dbapi_connection.cursor()
        sql = self.sql
        try:
            for before in connection.dispatch.before_cursor_execute:
                sql, values = before(connection, cursor, sql, values, None, False)
            cursor.execute(sql, values)
            # psycopg's rownumber is None when the statement returned no rows to fetch
            # (a look at the result's status; description would build its columns).
            row = cursor.fetchone() if cursor.rownumber is not None else None
            for after in connection.dispatch.after_cursor_execute:
                after(connection, cursor, sql, values, None, False)
            return row
        except connection.dialect.loaded_dbapi.Error as exc:
            lost = connection.dialect.is_disconnect(exc, dbapi_connection, cursor)
            if lost:
                connection.invalidate(exc)
            # Parameters hidden: they hold sealed payloads and addresses' blind indexes.
            raise sa.exc.DBAPIError.instance(
                sql,
                None,
                exc,
                connection.dialect.loaded_dbapi.Error,
                hide_parameters=True,
                connection_invalidated=lost,
                dialect=connection.dialect,
            ) from exc
        finally:
            cursor.close()
