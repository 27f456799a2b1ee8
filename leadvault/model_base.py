"""The base every model derives from and the column type they share.

One :class:`Base` (its ``MetaData`` names every constraint by the convention below, so
migrations stay portable) and :class:`UTCDateTime`, the one timestamp type: aware UTC
datetimes in and out, on SQLite (which stores them naive) and PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase

# Indico-style naming convention so every constraint has a stable, portable name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# The largest row id: id columns are 32-bit integers on PostgreSQL (URLs, the command
# line, tokens and the API refuse larger ids before a driver overflows on them).
ROW_ID_MAX = 2**31 - 1


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """Timezone-aware UTC timestamps on both SQLite (naive) and PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        return _bind_utc(value)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)

    def bind_processor(self, dialect: Any) -> Any:
        """:meth:`process_bind_param` and the dialect's own conversion as one function.

        A worker's batch binds ~17 timestamps per lead; SQLAlchemy's composition is
        three Python calls per value (this type's wrapper, ``process_bind_param``, on
        SQLite the DATETIME type's formatting through a dict), a few per cent of the
        inbox stage. Same values: a UTC datetime as it is, any other aware one
        converted, a naive one refused; on SQLite the same text as SQLite's DATETIME
        with its default storage format (tests/test_utc_datetime.py)."""
        impl_processor = self.impl_instance.bind_processor(dialect)
        if impl_processor is None:
            return _bind_utc
        if _plain_sqlite_datetime(self.impl_instance):
            return _bind_utc_sqlite_text
        return lambda value: impl_processor(_bind_utc(value))


def _bind_utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    zone = value.tzinfo
    if zone is dt.UTC:
        return value
    if zone is None:
        raise ValueError("naive datetimes are not stored; use leadvault.clock.now()")
    return value.astimezone(dt.UTC)


def _bind_utc_sqlite_text(value: dt.datetime | None) -> str | None:
    """SQLite's DATETIME text ("YYYY-MM-DD HH:MM:SS.ffffff", the UTC wall time): the
    first 26 characters of the UTC value's ISO form with that separator and always
    six digits of microseconds (its year always has four digits)."""
    utc = _bind_utc(value)
    return None if utc is None else utc.isoformat(" ", "microseconds")[:26]


def _plain_sqlite_datetime(impl: Any) -> bool:
    """SQLite's DATETIME with its default storage format (its text is known)."""
    from sqlalchemy.dialects.sqlite import DATETIME

    return type(impl) is DATETIME and impl._storage_format == DATETIME._storage_format
