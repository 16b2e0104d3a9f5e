"""The storage layer: everything pbx-bridge persists goes through here.

One setting selects the database (``[database] url``: SQLite by default, PostgreSQL as
the scale option); :mod:`.database` opens it and runs transactions and the cheap change
check, :mod:`.schema` describes the tables, :mod:`.migrate` applies the versioned
migrations in ``migrations/versions`` (Alembic). A feature that persists something adds
its tables with a new revision and its queries in its own folder, on :class:`Database`.
"""

from __future__ import annotations

from pathlib import Path

from pbx_bridge.storage.database import Backend, Database
from pbx_bridge.storage.migrate import Migrate, SchemaState, ensure_schema, head, schema_state
from pbx_bridge.storage.url import StorageError, display_url, parse_url

__all__ = [
    "Backend",
    "Database",
    "Migrate",
    "SchemaState",
    "StorageError",
    "display_url",
    "ensure_schema",
    "head",
    "open_database",
    "parse_url",
    "schema_state",
]


def open_database(
    target: str | Path, *, migrate: Migrate, check_interval: float = 0.1
) -> Database:
    """Open a database and check (or bring up to date, as ``migrate`` allows) its schema.

    Raises :class:`StorageError` with one line telling what to do."""
    db = Database.open(target, check_interval=check_interval)
    try:
        ensure_schema(db, migrate)
    except BaseException:
        db.close()
        raise
    return db
