"""The persisted directory: organizations, users, extensions, apps and bearer tokens.

Stored through :mod:`pbx_bridge.storage` (SQLite by default, or PostgreSQL; the schema is
versioned by its migrations). Secrets are never stored: app client secrets and bearer
tokens are kept as SHA-256 hex digests only.

:class:`Directory` opens the database and puts together its three parts, all on one
:class:`~pbx_bridge.directory.db.DirectoryDb` (one lock, one change check):

- :mod:`.rows`: organizations, users and extensions, loaded from TOML and looked up in
  one snapshot kept in memory;
- :mod:`.apps`: the apps registered to users and their client secrets;
- :mod:`.tokens`: bearer tokens, authenticated from a bounded in-memory map.

Both caches are dropped when this process or another (e.g. ``pbx-bridge directory load``
or ``token revoke`` while the service runs) wrote something that can make them wrong
(see :mod:`.db`). Its methods are those of the parts (``directory.rows``,
``directory.apps``, ``directory.tokens``), delegated.

One :class:`Directory` may be shared by threads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from pbx_bridge.config import Settings
from pbx_bridge.directory.apps import Apps
from pbx_bridge.directory.db import DirectoryDb, DirectoryError
from pbx_bridge.directory.models import (
    App,
    DirectoryFile,
    Extension,
    Organization,
    Principal,
    TokenInfo,
    User,
)
from pbx_bridge.directory.rows import DirectoryRows, LoadSummary
from pbx_bridge.directory.tokens import TOKEN_ID_LEN, Tokens, token_id
from pbx_bridge.storage import Database, Migrate, StorageError, ensure_schema

__all__ = ["TOKEN_ID_LEN", "Directory", "DirectoryError", "LoadSummary", "Migrate", "token_id"]


class Directory:
    """Organizations, users, extensions, apps and tokens, on the storage layer."""

    def __init__(
        self,
        db: Database,
        *,
        token_ttl: int = 3600,
        max_token_ttl: int = 31536000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        shared = DirectoryDb(db)
        self.tokens = Tokens(shared, token_ttl=token_ttl, max_token_ttl=max_token_ttl, clock=clock)
        self.rows = DirectoryRows(shared)
        self.apps = Apps(shared, self.rows, clock=clock)
        self._shared = shared
        # The lifetimes the tokens get (read by the OAuth endpoint and the CLI).
        self.token_ttl = self.tokens.token_ttl
        self.max_token_ttl = self.tokens.max_token_ttl

    # ----------------------------------------------------------------- lifecycle

    @classmethod
    def open(
        cls,
        target: str | Path,
        *,
        token_ttl: int = 3600,
        max_token_ttl: int = 31536000,
        clock: Callable[[], float] = time.time,
        migrate: Migrate = Migrate.UPGRADE,
        check_interval: float = 0.1,
    ) -> Directory:
        """Open a database: a URL (``sqlite:///FILE``, ``postgresql://...``) or a SQLite file
        path (its parent directories are created; ``":memory:"``: a private in-memory one).

        ``migrate`` says what may be done to the schema (:class:`Migrate`); by default it is
        brought up to date, as this library always did. ``serve`` passes
        ``Migrate.NOTHING``, the administration commands ``Migrate.CREATE``."""
        try:
            db = Database.open(target, check_interval=check_interval)
        except StorageError as exc:
            raise DirectoryError(str(exc)) from None
        try:
            ensure_schema(db, migrate)
        except StorageError as exc:
            db.close()
            raise DirectoryError(str(exc)) from None
        except BaseException:
            db.close()
            raise
        return cls(db, token_ttl=token_ttl, max_token_ttl=max_token_ttl, clock=clock)

    @classmethod
    def from_settings(cls, settings: Settings, *, migrate: Migrate) -> Directory:
        """The directory of ``[database]``, with the token lifetimes of ``[auth]``."""
        return cls.open(
            settings.database.url.get_secret_value(),
            token_ttl=settings.auth.token_ttl,
            max_token_ttl=settings.auth.max_token_ttl,
            migrate=migrate,
            check_interval=settings.database.change_check_interval,
        )

    def close(self) -> None:
        with self._shared.lock:
            self._shared.db.close()

    def __enter__(self) -> Directory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def path(self) -> Path | str:
        """The SQLite file (``":memory:"``), or the database URL with its password masked."""
        return self._shared.db.path

    @property
    def database(self) -> Database:
        return self._shared.db

    @property
    def schema_revision(self) -> str | None:
        from pbx_bridge.storage import schema_state

        return schema_state(self._shared.db).revision

    # ----------------------------------------------------------------- rows (DirectoryRows)

    def load(self, data: DirectoryFile, *, source: str | None = None) -> LoadSummary:
        return self.rows.load(data, source=source)

    def load_toml(self, path: str | Path) -> LoadSummary:
        return self.rows.load_toml(path)

    def organization(self, org_id: int) -> Organization | None:
        return self.rows.organization(org_id)

    def user(self, user_id: int) -> User | None:
        return self.rows.user(user_id)

    def extension(self, number: str) -> Extension | None:
        return self.rows.extension(number)

    def extensions_of_user(self, user_id: int) -> list[Extension]:
        return self.rows.extensions_of_user(user_id)

    def extensions_by_device(self) -> dict[str, Extension]:
        return self.rows.extensions_by_device()

    def extension_for_channel(self, channel: str) -> Extension | None:
        return self.rows.extension_for_channel(channel)

    def all_extensions(self) -> list[Extension]:
        return self.rows.all_extensions()

    def all_users(self) -> list[User]:
        return self.rows.all_users()

    def all_organizations(self) -> list[Organization]:
        return self.rows.all_organizations()

    def organization_of_extension(self, extension: Extension) -> Organization | None:
        return self.rows.organization_of_extension(extension)

    # ----------------------------------------------------------------- apps (Apps)

    def create_app(self, user_id: int, name: str) -> tuple[str, str]:
        return self.apps.create_app(user_id, name)

    def app(self, client_id: str) -> App | None:
        return self.apps.app(client_id)

    def apps_of_user(self, user_id: int) -> list[App]:
        return self.apps.apps_of_user(user_id)

    def all_apps(self) -> list[App]:
        return self.apps.all_apps()

    def set_app_disabled(self, client_id: str, disabled: bool) -> int:
        return self.apps.set_app_disabled(client_id, disabled)

    def delete_app(self, client_id: str) -> int:
        return self.apps.delete_app(client_id)

    def verify_client(self, client_id: str, client_secret: str) -> App | None:
        return self.apps.verify_client(client_id, client_secret)

    # ----------------------------------------------------------------- tokens (Tokens)

    def issue_token(self, client_id: str, ttl: int | None = None) -> tuple[str, datetime]:
        return self.tokens.issue_token(client_id, ttl)

    def authenticate(self, token: str) -> Principal | None:
        return self.tokens.authenticate(token)

    def revoke_token(self, token: str, *, client_id: str | None = None) -> bool:
        return self.tokens.revoke_token(token, client_id=client_id)

    def revoke_token_id(self, token_id_prefix: str) -> TokenInfo:
        return self.tokens.revoke_token_id(token_id_prefix)

    def revoke_app_tokens(self, client_id: str) -> int:
        return self.tokens.revoke_app_tokens(client_id)

    def list_tokens(self, client_id: str | None = None) -> list[TokenInfo]:
        return self.tokens.list_tokens(client_id)

    def purge_expired(self) -> int:
        return self.tokens.purge_expired()
