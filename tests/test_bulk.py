"""``bulk.insert_many`` hands the driver what ``connection.execute(insert, rows)`` hands
it (the same SQL, the same converted values) and stores the same rows."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import sqlalchemy as sa

from leadvault import bulk, leads
from leadvault.models import Lead, LeadAttribute, OutboxMessage

NOW = dt.datetime(2026, 12, 3, 13, 17, 42, 123456, tzinfo=dt.UTC)


def _driver_calls(connection: sa.Connection, run: Any) -> list[tuple[str, Any]]:
    """(statement, parameters) of each statement ``run`` hands the driver, the
    parameters as one flat list of values in the statement's order."""
    calls: list[tuple[str, Any]] = []

    def seen(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sets = parameters if isinstance(parameters, list) else [parameters]
        flat: list[Any] = []
        for values in sets:
            if isinstance(values, dict):  # psycopg's named parameters, in the text's order
                values = [values[name] for name in re.findall(r"%\((\w+)\)s", statement)]
            flat.extend(getattr(value, "obj", value) for value in values)  # psycopg's Binary
        calls.append((statement, flat))

    sa.event.listen(connection, "before_cursor_execute", seen)
    try:
        run()
    finally:
        sa.event.remove(connection, "before_cursor_execute", seen)
    return calls


def _as_one_statement(statement: str, rows: int) -> str:
    """SQLAlchemy's executemany statement (psycopg: one row's named parameters) as one
    statement for ``rows`` rows with numbered parameters (what PostgreSQL gets)."""
    head, values = statement.split(" VALUES ", 1)
    last = list(re.finditer(r"%\((\w+)\)s", values))[-1]
    row = values[: values.index(")", last.end()) + 1]
    width = row.count("%(")
    made = []
    for n in range(rows):
        numbers = iter(range(n * width + 1, (n + 1) * width + 1))
        made.append(re.sub(r"%\((\w+)\)s", lambda _m, i=numbers: f"${next(i)}", row))
    return f"{head} VALUES {', '.join(made)}{values[len(row) :]}"


def _lead_rows(n: int, *, offset: int = 0) -> list[dict[str, Any]]:
    zone = dt.timezone(dt.timedelta(hours=2))
    return [
        {
            "id": uuid.uuid4(),
            "email_index": f"bulk-{offset + i}".encode().ljust(32, b"."),
            "email": b"sealed",
            "wrapped_key": b"wrapped",
            "key_version": 1,
            "language": "de" if i % 2 else "en",
            "created_at": NOW + dt.timedelta(microseconds=i),
            # Another zone: converted to UTC as the type does.
            "last_activity_at": (NOW + dt.timedelta(seconds=i)).astimezone(zone),
        }
        for i in range(n)
    ]


def _columns(row: Any) -> dict[str, Any]:
    return {key: getattr(row, key) for key in row._fields}


def test_same_sql_and_values_as_sqlalchemys_executemany(session: Any, backend: str) -> None:
    connection = session.connection()
    table = Lead.__table__
    rows = _lead_rows(3)
    theirs = _driver_calls(connection, lambda: connection.execute(table.insert(), rows))
    stored_theirs = [
        _columns(row) for row in connection.execute(sa.select(table).order_by(table.c.email_index))
    ]
    connection.execute(table.delete().where(table.c.id.in_([row["id"] for row in rows])))
    ours = _driver_calls(connection, lambda: bulk.insert_many(connection, table, rows))
    stored_ours = [
        _columns(row) for row in connection.execute(sa.select(table).order_by(table.c.email_index))
    ]
    if backend == "postgresql":
        theirs = [(_as_one_statement(theirs[0][0], len(rows)), theirs[0][1])]
    assert [sql for sql, _ in ours] == [sql for sql, _ in theirs]
    assert [values for _, values in ours] == [values for _, values in theirs]
    assert stored_ours == stored_theirs
    assert {row.last_activity_at.tzinfo for row in connection.execute(sa.select(table))} == {dt.UTC}


def test_rows_of_another_key_order_and_several_tables(session: Any) -> None:
    connection = session.connection()
    lead_rows = _lead_rows(2, offset=10)
    bulk.insert_many(connection, Lead.__table__, lead_rows)
    attributes = [
        {"value": b"v", "updated_at": NOW, "name": "first_name", "lead_id": lead_rows[0]["id"]},
        {"lead_id": lead_rows[1]["id"], "name": "first_name", "value": b"w", "updated_at": NOW},
    ]
    assert bulk.insert_many(connection, LeadAttribute.__table__, attributes) == 2
    stored = connection.execute(
        sa.select(LeadAttribute.lead_id, LeadAttribute.value, LeadAttribute.updated_at)
    ).all()
    assert sorted(stored) == sorted(
        (row["lead_id"], row["value"], row["updated_at"]) for row in attributes
    )


def test_skipped_rows_are_not_counted(session: Any, backend: str) -> None:
    """The batch's new leads: a known address is skipped, and the count says so."""
    connection = session.connection()
    statement = leads._INSERT_UNLESS_KNOWN[backend]
    first = _lead_rows(2, offset=20)
    assert bulk.insert_many(connection, statement, first) == 2
    again = _lead_rows(3, offset=21)  # the first of these has a stored address
    assert bulk.insert_many(connection, statement, again) == 2


def test_a_column_default_or_one_row_goes_through_sqlalchemy(session: Any) -> None:
    """A row without a column whose default Python fills in (the outbox's status here):
    SQLAlchemy's execution, which fills it in for each row."""
    connection = session.connection()
    rows = [
        {
            "kind": "mail",
            "template": "optin",
            "lead_id": None,
            "payload": b"p",
            "payload_owner": str(uuid.uuid4()),
            "attempts": 0,
            "next_attempt_at": NOW,
            "created_at": NOW,
        }
        for _ in range(2)
    ]
    assert bulk._compile(OutboxMessage.__table__, connection.dialect, frozenset(rows[0])) is None
    # (SQLAlchemy's executemany on psycopg counts no rows: -1, as before)
    bulk.insert_many(connection, OutboxMessage.__table__, rows)
    bulk.insert_many(connection, OutboxMessage.__table__, rows[:1])
    statuses = connection.scalars(
        sa.select(OutboxMessage.status).where(
            OutboxMessage.payload_owner.in_([row["payload_owner"] for row in rows])
        )
    ).all()
    assert statuses == ["pending", "pending", "pending"]
