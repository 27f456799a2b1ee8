"""``UTCDateTime``'s one-function bind processor gives what SQLAlchemy's composition of
``process_bind_param`` and the dialect's own conversion gave: the same values bound,
the same text stored on SQLite, the same values read back on both databases."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from leadvault.model_base import UTCDateTime

BERLIN = ZoneInfo("Europe/Berlin")

AWARE = [
    dt.datetime(2026, 12, 3, 13, 17, 42, 123456, tzinfo=dt.UTC),
    dt.datetime(2026, 12, 3, 13, 17, 42, tzinfo=dt.UTC),  # no microseconds: still six digits
    dt.datetime(2026, 12, 3, 13, 17, 42, 1, tzinfo=dt.UTC),
    dt.datetime(1, 1, 1, tzinfo=dt.UTC),  # a year of one digit, zero-padded to four
    dt.datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    dt.datetime(2026, 7, 1, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
    dt.datetime(2026, 1, 1, 0, 30, 0, 500, tzinfo=dt.timezone(dt.timedelta(hours=-8))),
    dt.datetime(2026, 3, 1, 12, tzinfo=dt.timezone(dt.timedelta(0))),  # UTC, not dt.UTC itself
    dt.datetime(2026, 3, 1, 12, tzinfo=ZoneInfo("UTC")),
    dt.datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN),  # the hour that happens twice
    dt.datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN),
    dt.datetime(2026, 3, 29, 2, 30, tzinfo=BERLIN),  # the hour that does not happen
    dt.datetime(2026, 6, 30, 23, 59, 59, 999999, tzinfo=BERLIN),
]

DIALECTS = [sqlite.dialect(), postgresql.dialect(driver="psycopg")]


def _processors(dialect: Any) -> tuple[Any, Any]:
    """(ours, SQLAlchemy's composition) for ``dialect``."""
    impl = UTCDateTime().dialect_impl(dialect)
    return impl.bind_processor(dialect), sa.TypeDecorator.bind_processor(impl, dialect)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_the_bound_values_are_those_of_process_bind_param_and_the_dialect(dialect: Any) -> None:
    ours, theirs = _processors(dialect)
    assert ours is not None and theirs is not None
    for value in [None, *AWARE]:
        got, expected = ours(value), theirs(value)
        assert got == expected and type(got) is type(expected), value
        if isinstance(expected, dt.datetime):
            assert got.tzinfo is dt.UTC  # not merely an equal instant
    naive = dt.datetime(2026, 12, 3, 13, 17)
    for processor in (ours, theirs):
        with pytest.raises(ValueError, match="naive"):
            processor(naive)


def test_sqlite_text_is_the_datetime_types_text() -> None:
    ours, _ = _processors(sqlite.dialect())
    assert ours(AWARE[0]) == "2026-12-03 13:17:42.123456"
    assert ours(AWARE[1]) == "2026-12-03 13:17:42.000000"
    assert ours(AWARE[3]) == "0001-01-01 00:00:00.000000"
    assert ours(AWARE[6]) == "2026-07-01 02:30:00.000000"


def test_another_storage_format_keeps_the_dialects_conversion() -> None:
    class Seconds(UTCDateTime):
        impl = sqlite.DATETIME(truncate_microseconds=True)

    dialect = sqlite.dialect()
    processor = Seconds().dialect_impl(dialect).bind_processor(dialect)
    assert processor(AWARE[0]) == "2026-12-03 13:17:42"
    with pytest.raises(ValueError, match="naive"):
        processor(dt.datetime(2026, 12, 3))


def test_stored_and_read_back_unchanged(session: Any, backend: str) -> None:
    """Written one at a time and by executemany (a worker batch's way); read back as the
    same instants in UTC, microseconds included; SQLite's stored text as before."""
    probe = sa.Table(
        "utc_datetime_probe",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", UTCDateTime()),
        prefixes=["TEMPORARY"],
    )
    connection = session.connection()
    probe.create(connection)
    rows = [{"id": n, "at": value} for n, value in enumerate([None, *AWARE])]
    connection.execute(probe.insert(), rows[:1])
    connection.execute(probe.insert(), rows[1])
    connection.execute(probe.insert(), rows[2:])
    read = dict(connection.execute(sa.select(probe.c.id, probe.c.at)).all())
    for row in rows:
        expected = row["at"].astimezone(dt.UTC) if row["at"] is not None else None
        assert read[row["id"]] == expected
        if expected is not None:
            assert read[row["id"]].tzinfo is dt.UTC
            assert read[row["id"]].microsecond == expected.microsecond
    if backend == "sqlite":
        dialect = connection.dialect
        theirs = sa.TypeDecorator.bind_processor(UTCDateTime().dialect_impl(dialect), dialect)
        stored = dict(connection.execute(sa.text("SELECT id, at FROM utc_datetime_probe")).all())
        assert stored == {row["id"]: theirs(row["at"]) for row in rows}
    probe.drop(connection)
