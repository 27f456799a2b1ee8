"""``prepared.Prepared``: a statement's own constants need not be passed again, and a
bound statement gives back every row it returns (both databases)."""

from __future__ import annotations

import sqlalchemy as sa

from leadvault.app import runtime
from leadvault.db import read_only
from leadvault.prepared import Prepared


def test_a_prepared_statement_keeps_its_constants_and_returns_every_row(app):
    n = sa.bindparam("n", type_=sa.Integer)
    # 7 and 1 are the statement's own values: only "n" is passed.
    numbers = sa.select(n + 7).union_all(sa.select(n + 1))
    nothing = sa.select(sa.literal(1, sa.Integer)).where(n > 7)
    with read_only(runtime(app).session_factory) as session:
        connection = session.connection()
        dialect = connection.dialect
        assert sorted(Prepared(numbers, dialect).bind({"n": 3}).all(connection)) == [(4,), (10,)]
        assert Prepared(nothing, dialect).bind({"n": 3}).all(connection) == []
