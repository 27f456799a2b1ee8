"""One linear Alembic history that matches the models and runs both ways."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from leadvault import migrate, sqlite_writer
from leadvault.app import import_models, runtime
from leadvault.engine import create_engine
from leadvault.model_base import Base


def table_names(engine) -> set[str]:
    """Tables in the database, the queue file's (SQLite) included."""
    inspector = sa.inspect(engine)
    return set(inspector.get_table_names()) | set(
        inspector.get_table_names(schema=sqlite_writer.QUEUE_SCHEMA)
    )


def test_history_has_exactly_one_head():
    assert len(migrate.heads()) == 1


@pytest.mark.committing
def test_migrated_database_matches_the_models(app, backend):
    engine = runtime(app).engine
    assert engine.dialect.name == backend
    assert migrate.current(engine) == migrate.heads()[0]
    assert migrate.differences(engine) == []


def test_downgrade_to_base_and_upgrade_again(tmp_path):
    import_models()
    expected = {table.name for table in Base.metadata.sorted_tables}
    engine = create_engine(f"sqlite:///{tmp_path / 'roundtrip.db'}")
    try:
        migrate.upgrade(engine)
        assert migrate.current(engine) == migrate.heads()[0]
        assert expected <= table_names(engine)
        assert migrate.differences(engine) == []

        migrate.downgrade(engine, "base")
        assert migrate.current(engine) is None
        assert table_names(engine) <= {"alembic_version"}

        migrate.upgrade(engine)
        assert migrate.current(engine) == migrate.heads()[0]
        assert expected <= table_names(engine)
        assert migrate.differences(engine) == []
        # The seeded rows come back with the schema.
        with engine.connect() as connection:
            assert connection.scalar(sa.text("SELECT count(*) FROM purposes")) > 0
            assert connection.scalar(sa.text("SELECT count(*) FROM consent_ledger_head")) == 1
    finally:
        engine.dispose()


def test_upgrade_is_idempotent(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'twice.db'}")
    try:
        migrate.upgrade(engine)
        migrate.upgrade(engine)
        assert migrate.current(engine) == migrate.heads()[0]
    finally:
        engine.dispose()
