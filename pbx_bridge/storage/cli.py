"""CLI commands: ``db upgrade`` (apply the migrations) and ``db status`` (current vs head)."""

from __future__ import annotations

import argparse

from pbx_bridge.commands import Subcommands, add_command, add_group
from pbx_bridge.config import load_settings
from pbx_bridge.storage.database import Database
from pbx_bridge.storage.migrate import Migrate, ensure_schema, schema_state

__all__ = ["register"]


def _database(config: str | None) -> Database:
    settings = load_settings(config)
    return Database.open(settings.database.url.get_secret_value())


def _upgrade(args: argparse.Namespace) -> int:
    db = _database(args.config)
    try:
        before, after = ensure_schema(db, Migrate.UPGRADE)
    finally:
        db.close()
    if before.revision == after.revision:
        print(f"database {db.display}: at revision {after.revision} (head), nothing to do")
    else:
        print(f"database {db.display}: upgraded from {before.describe()} to {after.revision}")
    return 0


def _status(args: argparse.Namespace) -> int:
    db = _database(args.config)
    try:
        state = schema_state(db)
    finally:
        db.close()
    print(f"database {db.display} ({db.backend})")
    print(f"current: {state.describe()}")
    print(f"head:    {state.head}")
    if state.current:
        print("up to date")
        return 0
    if not state.known:
        print("newer than this pbx-bridge: upgrade pbx-bridge")
    else:
        print("outdated: run `pbx-bridge db upgrade`")
    return 1


def register(sub: Subcommands) -> None:
    db_sub = add_group(
        sub,
        "db",
        "the database: apply migrations, show the schema revision",
        "The database named by [database] url (SQLite by default, or PostgreSQL): its "
        "schema is versioned and changed only by `db upgrade`.",
    )
    add_command(
        db_sub,
        _upgrade,
        "upgrade",
        help="apply the pending migrations; prints the revision before and after",
        description="Apply every pending migration in one transaction (nothing changes if "
        "one fails), creating the schema in an empty database and adopting a database "
        "made by a pbx-bridge from before migrations. Safe to run again.",
    )
    add_command(
        db_sub,
        _status,
        "status",
        help="show the schema's revision and the newest this pbx-bridge knows",
        description="Show the database's schema revision and the head revision of this "
        "pbx-bridge. Exits 0 when up to date, 1 otherwise.",
    )
