"""Versioned schema migrations (Alembic), run from code: ``pbx-bridge db upgrade``.

The revisions live in ``migrations/versions`` inside the package, so an installed wheel
migrates with no ``alembic.ini``. Revisions 0001 and 0002 are the schema pbx-bridge kept
before Alembic as SQLite ``PRAGMA user_version`` 1 and 2: such a file is *adopted* (stamped
at the matching revision, no table touched) and then upgraded like any other.

Who migrates (:class:`Migrate`): ``db upgrade`` applies everything; the commands that
administer the directory (``directory load``, ``app ...``, ``token ...``) create the
schema in an empty database and adopt a pre-Alembic file, but leave an outdated schema
alone; ``serve`` migrates nothing and refuses to start unless the schema is at the head.
All steps of one upgrade run in one transaction, under the writers' lock: they commit
together or not at all, and a second process upgrading at the same moment finds nothing
left to do.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from pbx_bridge.storage.database import Database
from pbx_bridge.storage.url import StorageError

__all__ = ["LEGACY_REVISIONS", "Migrate", "SchemaState", "ensure_schema", "head", "schema_state"]

_SCRIPTS = Path(__file__).resolve().parent / "migrations"
# SQLite PRAGMA user_version of the pre-Alembic store -> the revision with that schema.
LEGACY_REVISIONS = {1: "0001", 2: "0002"}
UPGRADE_HINT = "run `pbx-bridge db upgrade`"
# Alembic tells at INFO which implementation it picked, on every schema check: noise in
# the service's log and around `serve`'s one-line refusal. `db upgrade` prints from/to.
logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)


class Migrate(enum.Enum):
    """What opening a database may do to its schema."""

    NOTHING = "nothing"  # serve: the schema must be at the head already
    CREATE = "create"  # admin commands: create it in an empty database, adopt a legacy file
    UPGRADE = "upgrade"  # db upgrade: apply every pending migration


@dataclass(frozen=True)
class SchemaState:
    """Where a database's schema stands."""

    revision: str | None  # Alembic revision, None when not managed by Alembic
    legacy_version: int | None  # pre-Alembic PRAGMA user_version (SQLite), when unmanaged
    empty: bool  # no table at all
    head: str

    @property
    def current(self) -> bool:
        return self.revision == self.head

    @property
    def known(self) -> bool:
        """False when the revision is not one of ours (a newer pbx-bridge migrated it)."""
        return self.revision is None or self.revision in _all_revisions()

    def describe(self) -> str:
        if self.revision is not None:
            return self.revision
        if self.legacy_version is not None:
            return f"none (pre-Alembic schema version {self.legacy_version})"
        return "none (empty database)" if self.empty else "none (not a pbx-bridge database)"


def _config(conn: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head() -> str:
    """The newest revision this pbx-bridge knows."""
    revision = _scripts().get_current_head()
    assert revision is not None
    return revision


def _all_revisions() -> set[str]:
    return {script.revision for script in _scripts().walk_revisions()}


def _read_state(db: Database, conn: Connection) -> SchemaState:
    tables = set(inspect(conn).get_table_names())
    revision = MigrationContext.configure(conn).get_current_revision()
    legacy = None
    if revision is None and db.backend == "sqlite" and "organizations" in tables:
        legacy = int(conn.exec_driver_sql("PRAGMA user_version").scalar_one())
    return SchemaState(
        revision=revision,
        legacy_version=legacy,
        empty=not (tables - {"alembic_version"}),
        head=head(),
    )


def schema_state(db: Database) -> SchemaState:
    try:
        with db.transaction() as conn:
            return _read_state(db, conn)
    except SQLAlchemyError as exc:
        raise db.error(exc) from None


def _refusal(db: Database, state: SchemaState) -> StorageError:
    if not state.known:
        return StorageError(
            f"database {db.display}: schema revision {state.revision} is newer than this "
            f"pbx-bridge supports (head {state.head}); upgrade pbx-bridge"
        )
    if state.revision is None and not state.empty and state.legacy_version is None:
        return StorageError(
            f"database {db.display}: has tables but is not a pbx-bridge database"
        )
    return StorageError(
        f"database {db.display}: schema at revision {state.describe()}, this pbx-bridge "
        f"needs {state.head}: {UPGRADE_HINT}"
    )


def ensure_schema(db: Database, migrate: Migrate) -> tuple[SchemaState, SchemaState]:
    """Check, and as far as ``migrate`` allows bring up to date, the schema. Returns the
    state before and after; raises :class:`StorageError` with one line telling what to do."""
    before = schema_state(db)
    if not state_allows(before, migrate):
        raise _refusal(db, before)
    if before.current:
        return before, before
    try:
        with db.transaction(write=True) as conn:
            state = _read_state(db, conn)  # again, under the writers' lock
            if not state_allows(state, migrate):
                raise _refusal(db, state)
            if not state.current:
                _upgrade(conn, state)
            after = _read_state(db, conn)
    except SQLAlchemyError as exc:
        raise db.error(exc) from None
    return before, after


def state_allows(state: SchemaState, migrate: Migrate) -> bool:
    """Whether a database in this state may be used (after what ``migrate`` may do)."""
    if not state.known:
        return False
    unmanaged = state.revision is None
    if unmanaged and not state.empty and state.legacy_version not in LEGACY_REVISIONS:
        return False  # foreign tables, or a pre-Alembic version we do not know
    if state.current:
        return True
    if migrate is Migrate.UPGRADE:
        return True
    if migrate is Migrate.CREATE:
        return unmanaged  # an empty database, or today's file from before Alembic
    return False


def _upgrade(conn: Connection, state: SchemaState) -> None:
    cfg = _config(conn)
    if state.revision is None and state.legacy_version is not None:
        command.stamp(cfg, LEGACY_REVISIONS[state.legacy_version])
    command.upgrade(cfg, "head")
