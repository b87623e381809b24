"""Alembic's entry point: runs the revisions on the connection it is handed.

The dispatcher never runs Alembic from an ini file: :func:`dispatcher.store.upgrade`
builds the config and passes an open connection in ``config.attributes``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from dispatcher import tables  # noqa: F401  (registers the tables on the metadata)

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `dispatcher db upgrade`")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
