"""Alembic environment: one linear history for SQLite and PostgreSQL.

Leadvault passes its engine in ``config.attributes["connection"]``; nothing
here reads settings on its own.
"""

from __future__ import annotations

from alembic import context

from leadvault.app import import_models
from leadvault.model_base import Base

import_models()
target_metadata = Base.metadata
config = context.config

connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `leadvault db upgrade`")

context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
