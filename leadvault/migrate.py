"""Running the Alembic history from the CLI and the tests."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Index, MetaData
from sqlalchemy.engine import Engine

from leadvault import sqlite_writer


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("migrations")))
    return config


def upgrade(engine: Engine, revision: str = "head", *, time_zone: str = "UTC") -> None:
    """Migrate; ``time_zone`` (the instance's) is what data migrations count days in."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        config.attributes["time_zone"] = time_zone
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def heads() -> list[str]:
    return list(ScriptDirectory.from_config(alembic_config()).get_heads())


def current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def differences(engine: Engine) -> list[Any]:
    """What autogenerate would change: empty when models and migrations agree."""
    from leadvault.app import import_models
    from leadvault.model_base import Base

    import_models()
    with engine.connect() as connection:
        queue_file = sqlite_writer.queue_attached(connection)
        metadata = _with_queue_schema(Base.metadata) if queue_file else Base.metadata
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_schemas": queue_file}
        )
        return compare_metadata(context, metadata)


def _with_queue_schema(metadata: MetaData) -> MetaData:
    """The models as SQLite holds them: the queue file's tables in its schema."""
    placed = MetaData()
    for table in metadata.sorted_tables:
        if table.name not in sqlite_writer.QUEUE_TABLES:
            table.to_metadata(placed)
            continue
        copy = table.to_metadata(placed, schema=sqlite_writer.QUEUE_SCHEMA)
        # The naming convention would put the schema in the copied indexes' names.
        names = {_columns(index): index.name for index in table.indexes}
        for index in copy.indexes:
            index.name = names[_columns(index)]
    return placed


def _columns(index: Index) -> tuple[str, ...]:
    return tuple(column.name for column in index.columns)
