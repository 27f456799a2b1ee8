"""The test session itself: each test runs in one transaction that is rolled back."""

from __future__ import annotations

import sqlalchemy as sa

from capture.models import Form
from leadvault.app import runtime
from tests import factories


def count_forms(app) -> int:
    with runtime(app).session_factory() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(Form))


def test_a_tests_commits_stay_inside_its_transaction(app, db_connection):
    """The services commit (unit_of_work), yet only a savepoint of the test's
    transaction is released: rolling back to a mark taken before undoes it."""
    before = count_forms(app)
    mark = db_connection.begin_nested()
    factories.form(app)
    factories.lead(app)
    assert count_forms(app) == before + 2  # the lead's factory makes its own form
    mark.rollback()
    assert count_forms(app) == before
    assert db_connection.in_transaction()


def test_every_app_of_a_test_shares_its_connection(make_app, db_connection):
    first, second = make_app(), make_app(rate_limit_ip="5/minute")
    form_id = factories.form(first)
    with runtime(second).session_factory() as s:
        assert s.scalar(sa.select(Form.public_id).where(Form.public_id == form_id)) == form_id
        assert (
            s.connection().connection.dbapi_connection is db_connection.connection.dbapi_connection
        )
