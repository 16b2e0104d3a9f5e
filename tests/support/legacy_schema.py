"""The schema pbx-bridge kept before Alembic (``PRAGMA user_version`` 1 and 2), verbatim
from the old ``pbx_bridge/directory/store.py``, to make pre-Alembic SQLite files in tests:
the storage layer must adopt them, and its baseline revisions must reproduce them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["LEGACY_MIGRATIONS", "make_legacy_file"]

LEGACY_MIGRATIONS: tuple[str, ...] = (
    # 1: initial schema
    """
    CREATE TABLE organizations (
        id    INTEGER PRIMARY KEY,
        name  TEXT NOT NULL,
        code  TEXT NOT NULL UNIQUE
    );
    CREATE TABLE users (
        id            INTEGER PRIMARY KEY,
        name          TEXT NOT NULL,
        role          TEXT NOT NULL CHECK (role IN ('user', 'organization', 'admin')),
        organization  INTEGER REFERENCES organizations(id)
    );
    CREATE TABLE extensions (
        number             TEXT PRIMARY KEY,
        owner              INTEGER NOT NULL REFERENCES users(id),
        device             TEXT NOT NULL UNIQUE,
        recording_enabled  INTEGER NOT NULL,
        recording_trigger  TEXT NOT NULL,
        recording_format   TEXT NOT NULL
    );
    CREATE INDEX extensions_owner ON extensions(owner);
    CREATE TABLE apps (
        client_id    TEXT PRIMARY KEY,
        name         TEXT NOT NULL,
        user_id      INTEGER NOT NULL REFERENCES users(id),
        secret_hash  TEXT NOT NULL,
        created      REAL NOT NULL
    );
    CREATE TABLE tokens (
        token_hash  TEXT PRIMARY KEY,
        client_id   TEXT NOT NULL REFERENCES apps(client_id) ON DELETE CASCADE,
        created     REAL NOT NULL,
        expires_at  REAL NOT NULL
    );
    CREATE INDEX tokens_expires_at ON tokens(expires_at);
    """,
    # 2: apps can be disabled (`pbx-bridge app disable`): no new token, old ones revoked
    """
    ALTER TABLE apps ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
    """,
)


def make_legacy_file(path: Path, version: int, rows: str = "") -> None:
    """A SQLite file as the pre-Alembic store left it at ``version``, with ``rows`` (SQL)."""
    conn = sqlite3.connect(path)
    for script in LEGACY_MIGRATIONS[:version]:
        conn.executescript(script)
    conn.executescript(rows + f"PRAGMA user_version = {version};")
    conn.close()
