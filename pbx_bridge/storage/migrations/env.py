"""Alembic's environment: always run by :mod:`pbx_bridge.storage.migrate` with an open
connection that is already inside the transaction the caller commits (all steps of one
upgrade commit together, or none does)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("pbx_bridge migrations run through `pbx-bridge db upgrade` only")
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
