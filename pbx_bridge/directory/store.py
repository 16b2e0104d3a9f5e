"""The persisted directory: organizations, users, extensions, apps and bearer tokens.

One SQLite file (WAL mode), schema versioned with ``PRAGMA user_version`` and upgraded by
the forward-only :data:`MIGRATIONS` list. Secrets are never stored: app client secrets and
bearer tokens are kept as SHA-256 hex digests only.

The directory rows (organizations, users, extensions) are cached in memory because the
API reads them on every request. The cache is rebuilt after :meth:`Directory.load`, and
also when another process (e.g. ``pbx-bridge directory load`` while the service runs)
committed to the file: ``PRAGMA data_version`` tells, at the cost of one tiny query.
Token lookups always go to SQLite.

One :class:`Directory` may be shared by threads (one connection behind a lock).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError

from pbx_bridge.config import validation_messages
from pbx_bridge.directory.models import (
    App,
    DirectoryFile,
    Extension,
    Organization,
    Principal,
    RecordingSetup,
    TokenInfo,
    User,
    device_of_channel,
)

__all__ = ["MIGRATIONS", "TOKEN_ID_LEN", "Directory", "DirectoryError", "LoadSummary", "token_id"]

# Forward migrations: MIGRATIONS[n] upgrades a database from user_version n to n + 1.
# Append only; never edit a migration that has shipped.
MIGRATIONS: tuple[str, ...] = (
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

_MAX_CREDENTIAL_LEN = 512
# A token's public name: this many hex digits of its SHA-256 (48 bits: unique in any
# real table, and `token revoke` refuses an ambiguous one anyway).
TOKEN_ID_LEN = 12
# `token revoke ID` takes a prefix of an id, at least this long.
_MIN_TOKEN_ID_PREFIX = 6
_HEX = frozenset("0123456789abcdef")
# Compared against when a client id is unknown, so that both paths cost the same.
_DUMMY_HASH = hashlib.sha256(b"pbx-bridge: no such client").hexdigest()


class DirectoryError(ValueError):
    """A directory operation was refused. The message is one line, ready for the user."""


class LoadSummary(NamedTuple):
    organizations: int
    users: int
    extensions: int


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def token_id(token: str) -> str:
    """The id under which a token is listed and logged (never the token itself)."""
    return _sha256(token)[:TOKEN_ID_LEN]


@dataclass(frozen=True)
class _Snapshot:
    organizations: dict[int, Organization] = field(default_factory=dict)
    users: dict[int, User] = field(default_factory=dict)
    extensions: dict[str, Extension] = field(default_factory=dict)
    by_device: dict[str, Extension] = field(default_factory=dict)
    by_user: dict[int, tuple[Extension, ...]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        organizations: Iterable[Organization],
        users: Iterable[User],
        extensions: Iterable[Extension],
    ) -> _Snapshot:
        exts = sorted(extensions, key=lambda e: e.number)
        by_user: dict[int, list[Extension]] = {}
        for ext in exts:
            by_user.setdefault(ext.owner, []).append(ext)
        return cls(
            organizations={o.id: o for o in organizations},
            users={u.id: u for u in users},
            extensions={e.number: e for e in exts},
            by_device={e.device: e for e in exts},
            by_user={k: tuple(v) for k, v in by_user.items()},
        )


def _integrity_errors(
    organizations: dict[int, Organization],
    users: dict[int, User],
    extensions: dict[str, Extension],
) -> list[str]:
    """Everything wrong with this (merged) directory; empty when it is consistent."""
    errors: list[str] = []
    codes: dict[str, int] = {}
    for org in organizations.values():
        if org.code in codes and codes[org.code] != org.id:
            errors.append(
                f"organization {org.id}: code {org.code!r} is already used by "
                f"organization {codes[org.code]}"
            )
        codes[org.code] = org.id
    for user in users.values():
        if user.organization is not None and user.organization not in organizations:
            errors.append(f"user {user.id}: organization {user.organization} does not exist")
    devices: dict[str, str] = {}
    for ext in extensions.values():
        where = f"extension {ext.number!r}"
        if ext.device in devices and devices[ext.device] != ext.number:
            errors.append(
                f"{where}: device {ext.device!r} is already used by extension "
                f"{devices[ext.device]!r}"
            )
        devices[ext.device] = ext.number
        owner = users.get(ext.owner)
        if owner is None:
            errors.append(f"{where}: owner {ext.owner} is not a known user")
            continue
        if owner.organization is None:
            errors.append(
                f"{where}: owner {ext.owner} belongs to no organization "
                "(extensions belong to an organization's users)"
            )
            continue
        owner_org = organizations.get(owner.organization)
        if owner_org is not None and "*" in ext.number:
            prefix = ext.number.split("*", 1)[0]
            if prefix != owner_org.code:
                errors.append(
                    f"{where}: prefix {prefix!r} is not the code {owner_org.code!r} of "
                    f"organization {owner_org.id} its owner {owner.id} belongs to"
                )
    return errors


class Directory:
    """Organizations, users, extensions, apps and tokens in one SQLite file."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path | str,
        *,
        token_ttl: int = 3600,
        max_token_ttl: int = 31536000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if token_ttl <= 0 or max_token_ttl <= 0:
            raise ValueError("token TTLs must be positive")
        self._conn = conn
        self._path = path
        self._lock = threading.RLock()
        self._clock = clock
        self.token_ttl = min(token_ttl, max_token_ttl)
        self.max_token_ttl = max_token_ttl
        self._snapshot_cache: _Snapshot | None = None
        self._data_version: int | None = None

    # ----------------------------------------------------------------- lifecycle

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        token_ttl: int = 3600,
        max_token_ttl: int = 31536000,
        clock: Callable[[], float] = time.time,
    ) -> Directory:
        """Open (creating it, its parent directories and its schema if needed) a database.

        ``":memory:"`` gives a private in-memory database (tests).
        """
        memory = str(path) == ":memory:"
        if not memory:
            path = Path(path)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                if not path.exists():  # the file holds hashes only, but keep it private
                    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            except OSError as exc:
                raise DirectoryError(f"database {path}: {exc.strerror or exc}") from None
        try:
            conn = sqlite3.connect(
                str(path), check_same_thread=False, isolation_level=None, timeout=10.0
            )
        except sqlite3.Error as exc:
            raise DirectoryError(f"database {path}: {exc}") from None
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA busy_timeout = 10000")
            if not memory:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            _migrate(conn, path)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise DirectoryError(f"database {path}: {exc}") from None
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, token_ttl=token_ttl, max_token_ttl=max_token_ttl, clock=clock)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Directory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def path(self) -> Path | str:
        return self._path

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    # ----------------------------------------------------------------- directory: writes

    def load(self, data: DirectoryFile, *, source: str | None = None) -> LoadSummary:
        """Upsert organizations, users and extensions, all or nothing.

        Nothing is deleted. The directory that results (what is stored, updated with
        ``data``) must be consistent, or :class:`DirectoryError` is raised and nothing is
        written: every user's organization and every extension's owner exists, an
        extension's owner belongs to an organization whose code prefixes the number
        (``0003*210`` -> code ``0003``), organization codes and devices are unique.
        """
        prefix = f"{source}: " if source else ""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                current = self._read_rows()
                orgs = dict(current.organizations)
                orgs.update((o.id, o) for o in data.organizations)
                users = dict(current.users)
                users.update((u.id, u) for u in data.users)
                exts = dict(current.extensions)
                exts.update((e.number, e) for e in data.extensions)
                errors = _integrity_errors(orgs, users, exts)
                if errors:
                    raise DirectoryError(prefix + "; ".join(errors))
                conn.executemany(
                    "INSERT INTO organizations (id, name, code) VALUES (?, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET name = excluded.name, code = excluded.code",
                    [(o.id, o.name, o.code) for o in data.organizations],
                )
                conn.executemany(
                    "INSERT INTO users (id, name, role, organization) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
                    "role = excluded.role, organization = excluded.organization",
                    [(u.id, u.name, u.role, u.organization) for u in data.users],
                )
                # Devices may move between extensions within one load: free them first.
                conn.executemany(
                    "UPDATE extensions SET device = '~moving~' || number WHERE number = ?",
                    [(e.number,) for e in data.extensions],
                )
                conn.executemany(
                    "INSERT INTO extensions (number, owner, device, recording_enabled, "
                    "recording_trigger, recording_format) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (number) DO UPDATE SET owner = excluded.owner, "
                    "device = excluded.device, recording_enabled = excluded.recording_enabled, "
                    "recording_trigger = excluded.recording_trigger, "
                    "recording_format = excluded.recording_format",
                    [
                        (
                            e.number,
                            e.owner,
                            e.device,
                            int(e.recording.enabled),
                            e.recording.trigger,
                            e.recording.format,
                        )
                        for e in data.extensions
                    ],
                )
                conn.execute("COMMIT")
            except BaseException as exc:
                conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise DirectoryError(f"{prefix}{exc}") from None
                raise
            self._snapshot_cache = None  # invalidate
        return LoadSummary(len(data.organizations), len(data.users), len(data.extensions))

    def load_toml(self, path: str | Path) -> LoadSummary:
        """Validate and :meth:`load` a directory TOML file (config/directory.example.toml)."""
        path = Path(path)
        try:
            with path.open("rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise DirectoryError(f"{path}: not found") from None
        except OSError as exc:
            raise DirectoryError(f"{path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise DirectoryError(f"{path}: not valid UTF-8") from None
        except tomllib.TOMLDecodeError as exc:
            raise DirectoryError(f"{path}: invalid TOML: {exc}") from None
        try:
            data = DirectoryFile.model_validate(raw)
        except ValidationError as exc:
            msgs = validation_messages(exc, show_input=True)
            raise DirectoryError(f"{path}: " + "; ".join(msgs)) from None
        return self.load(data, source=str(path))

    # ----------------------------------------------------------------- directory: reads

    def _read_rows(self) -> _Snapshot:
        conn = self._conn
        orgs = [
            Organization(id=i, name=n, code=c)
            for i, n, c in conn.execute("SELECT id, name, code FROM organizations")
        ]
        users = [
            User(id=i, name=n, role=r, organization=o)
            for i, n, r, o in conn.execute("SELECT id, name, role, organization FROM users")
        ]
        exts = [
            Extension(
                number=num,
                owner=owner,
                device=dev,
                recording=RecordingSetup(enabled=bool(en), trigger=trig, format=fmt),
            )
            for num, owner, dev, en, trig, fmt in conn.execute(
                "SELECT number, owner, device, recording_enabled, recording_trigger, "
                "recording_format FROM extensions"
            )
        ]
        return _Snapshot.build(orgs, users, exts)

    def _snapshot(self) -> _Snapshot:
        with self._lock:
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            if self._snapshot_cache is None or version != self._data_version:
                self._snapshot_cache = self._read_rows()
                self._data_version = version
            return self._snapshot_cache

    def organization(self, org_id: int) -> Organization | None:
        return self._snapshot().organizations.get(org_id)

    def user(self, user_id: int) -> User | None:
        return self._snapshot().users.get(user_id)

    def extension(self, number: str) -> Extension | None:
        return self._snapshot().extensions.get(number)

    def extensions_of_user(self, user_id: int) -> list[Extension]:
        """The user's extensions, sorted by number."""
        return list(self._snapshot().by_user.get(user_id, ()))

    def extensions_by_device(self) -> dict[str, Extension]:
        """Device (``PJSIP/0003*210``) -> extension. A fresh dict: the caller may keep it."""
        return dict(self._snapshot().by_device)

    def extension_for_channel(self, channel: str) -> Extension | None:
        """The extension whose device a channel (``PJSIP/0003*210-0000002a``) is on."""
        return self._snapshot().by_device.get(device_of_channel(channel))

    def all_extensions(self) -> list[Extension]:
        """Every extension, sorted by number."""
        return list(self._snapshot().extensions.values())

    def all_users(self) -> list[User]:
        return sorted(self._snapshot().users.values(), key=lambda u: u.id)

    def all_organizations(self) -> list[Organization]:
        return sorted(self._snapshot().organizations.values(), key=lambda o: o.id)

    def organization_of_extension(self, extension: Extension) -> Organization | None:
        """The organization owning an extension (its owner's), for ownerId/ownerName."""
        snap = self._snapshot()
        owner = snap.users.get(extension.owner)
        if owner is None or owner.organization is None:
            return None
        return snap.organizations.get(owner.organization)

    # ----------------------------------------------------------------- apps

    def create_app(self, user_id: int, name: str) -> tuple[str, str]:
        """Register an app to a user. Returns ``(client_id, client_secret)``; the secret
        is shown this once and only its SHA-256 is stored."""
        if self.user(user_id) is None:
            raise DirectoryError(f"no user with id {user_id} (load the directory first)")
        try:
            App(client_id="x", name=name, user_id=user_id, created=datetime.now(UTC))
        except ValidationError as exc:
            raise DirectoryError("app " + "; ".join(validation_messages(exc))) from None
        # Hex, not urlsafe base64: a urlsafe id can begin with "-", and then
        # `pbx-bridge token issue --app ID` reads it as an option (1 id in 64).
        client_id = secrets.token_hex(16)
        client_secret = secrets.token_urlsafe(32)
        with self._lock:
            try:
                self._conn.execute(
                    "INSERT INTO apps (client_id, name, user_id, secret_hash, created) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (client_id, name, user_id, _sha256(client_secret), self._clock()),
                )
            except sqlite3.IntegrityError as exc:
                raise DirectoryError(f"cannot create app: {exc}") from None
        return client_id, client_secret

    def app(self, client_id: str) -> App | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_APP_COLUMNS} FROM apps WHERE client_id = ?", (client_id,)
            ).fetchone()
        return _app(row) if row else None

    def apps_of_user(self, user_id: int) -> list[App]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_APP_COLUMNS} FROM apps WHERE user_id = ? ORDER BY created, client_id",
                (user_id,),
            ).fetchall()
        return [_app(r) for r in rows]

    def all_apps(self) -> list[App]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_APP_COLUMNS} FROM apps ORDER BY created, client_id"
            ).fetchall()
        return [_app(r) for r in rows]

    def set_app_disabled(self, client_id: str, disabled: bool) -> int:
        """Disable (or enable again) an app. Disabling revokes every token of the app, in
        the same transaction; returns how many tokens were revoked."""
        with self._lock, self._transaction():
            cur = self._conn.execute(
                "UPDATE apps SET disabled = ? WHERE client_id = ?", (int(disabled), client_id)
            )
            if cur.rowcount == 0:
                raise DirectoryError(f"no app with client id {client_id!r}")
            if not disabled:
                return 0
            cur = self._conn.execute("DELETE FROM tokens WHERE client_id = ?", (client_id,))
            return cur.rowcount

    def delete_app(self, client_id: str) -> int:
        """Delete an app and every token of it; returns how many tokens were revoked."""
        with self._lock, self._transaction():
            revoked = self._conn.execute(
                "DELETE FROM tokens WHERE client_id = ?", (client_id,)
            ).rowcount
            cur = self._conn.execute("DELETE FROM apps WHERE client_id = ?", (client_id,))
            if cur.rowcount == 0:
                raise DirectoryError(f"no app with client id {client_id!r}")
            return revoked

    def verify_client(self, client_id: str, client_secret: str) -> App | None:
        """The app if ``client_secret`` is its secret, else None (constant-time compare).

        A disabled app is returned too (``app.disabled``): the caller refuses it, and can
        tell the operator why, without a second look-up."""
        if not isinstance(client_id, str) or not isinstance(client_secret, str):
            return None
        if len(client_id) > _MAX_CREDENTIAL_LEN or len(client_secret) > _MAX_CREDENTIAL_LEN:
            return None
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_APP_COLUMNS}, secret_hash FROM apps WHERE client_id = ?",
                (client_id,),
            ).fetchone()
        stored = row[-1] if row else _DUMMY_HASH
        ok = hmac.compare_digest(_sha256(client_secret), stored)
        return _app(row[:-1]) if (row and ok) else None

    # ----------------------------------------------------------------- tokens

    def issue_token(self, client_id: str, ttl: int | None = None) -> tuple[str, datetime]:
        """A new bearer token for an app. ``ttl`` (seconds) defaults to ``token_ttl`` and
        is capped at ``max_token_ttl``. Returns ``(token, expires_at)`` (UTC). Only the
        token's SHA-256 is stored."""
        if ttl is None:
            ttl = self.token_ttl
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
            raise DirectoryError(f"token TTL must be a positive number of seconds, not {ttl!r}")
        ttl = min(ttl, self.max_token_ttl)
        token = secrets.token_urlsafe(32)
        now = self._clock()
        expires = now + ttl
        with self._lock:
            known = self._conn.execute(
                "SELECT disabled FROM apps WHERE client_id = ?", (client_id,)
            ).fetchone()
            if known is None:
                raise DirectoryError(f"no app with client id {client_id!r}")
            if known[0]:
                raise DirectoryError(
                    f"app {client_id!r} is disabled (pbx-bridge app enable --app ID)"
                )
            self._conn.execute(
                "INSERT INTO tokens (token_hash, client_id, created, expires_at) "
                "VALUES (?, ?, ?, ?)",
                (_sha256(token), client_id, now, expires),
            )
        return token, datetime.fromtimestamp(expires, UTC)

    def authenticate(self, token: str) -> Principal | None:
        """The principal a bearer token stands for; None if unknown, expired or malformed.

        The lookup is by SHA-256 of the token, so no comparison ever runs on the secret.
        """
        if not isinstance(token, str) or not token or len(token) > _MAX_CREDENTIAL_LEN:
            return None
        with self._lock:
            row = self._conn.execute(
                "SELECT t.expires_at, a.client_id, u.id, u.role, u.organization "
                "FROM tokens t JOIN apps a ON a.client_id = t.client_id "
                "JOIN users u ON u.id = a.user_id WHERE t.token_hash = ? AND a.disabled = 0",
                (_sha256(token),),
            ).fetchone()
        if row is None:
            return None
        expires_at, client_id, user_id, role, organization = row
        if expires_at <= self._clock():
            return None
        return Principal(
            user_id=user_id,
            role=role,
            organization_id=None if role == "admin" else organization,
            client_id=client_id,
        )

    def revoke_token(self, token: str, *, client_id: str | None = None) -> bool:
        """Forget a token. True if it existed. With ``client_id``, only a token of that
        app is revoked (RFC 7009: a client revokes its own tokens, never another's)."""
        if not isinstance(token, str) or len(token) > _MAX_CREDENTIAL_LEN:
            return False
        sql, args = "DELETE FROM tokens WHERE token_hash = ?", [_sha256(token)]
        if client_id is not None:
            sql += " AND client_id = ?"
            args.append(client_id)
        with self._lock:
            cur = self._conn.execute(sql, args)
        return cur.rowcount > 0

    def revoke_token_id(self, token_id_prefix: str) -> TokenInfo:
        """Revoke the one token whose id (see :func:`token_id`) begins with this prefix
        (at least 6 hex digits); returns what it was. Refuses an unknown or ambiguous id."""
        prefix = token_id_prefix.strip().lower()
        if not (_MIN_TOKEN_ID_PREFIX <= len(prefix) <= 64 and set(prefix) <= _HEX):
            raise DirectoryError(
                f"a token id is {_MIN_TOKEN_ID_PREFIX} to {TOKEN_ID_LEN} hex digits, as "
                "`pbx-bridge token list` shows it (to revoke by the token itself, pipe it "
                "to `pbx-bridge token revoke --token-stdin`)"
            )
        with self._lock, self._transaction():
            # A range on the primary key: the index finds the prefix, no table scan.
            rows = self._conn.execute(
                f"SELECT {_TOKEN_COLUMNS} FROM tokens t JOIN apps a ON a.client_id = t.client_id "
                "WHERE t.token_hash >= ? AND t.token_hash < ? LIMIT 2",
                (prefix, prefix + "g"),
            ).fetchall()
            if not rows:
                raise DirectoryError(f"no token with id {prefix!r}")
            if len(rows) > 1:
                raise DirectoryError(f"token id {prefix!r} is ambiguous: give more digits")
            self._conn.execute("DELETE FROM tokens WHERE token_hash = ?", (rows[0][0],))
        return _token_info(rows[0])

    def revoke_app_tokens(self, client_id: str) -> int:
        """Revoke every token of an app; returns how many."""
        with self._lock:
            known = self._conn.execute("SELECT 1 FROM apps WHERE client_id = ?", (client_id,))
            if known.fetchone() is None:
                raise DirectoryError(f"no app with client id {client_id!r}")
            return self._conn.execute(
                "DELETE FROM tokens WHERE client_id = ?", (client_id,)
            ).rowcount

    def list_tokens(self, client_id: str | None = None) -> list[TokenInfo]:
        """The tokens not yet expired (of one app, or of all), oldest first."""
        sql = (
            f"SELECT {_TOKEN_COLUMNS} FROM tokens t JOIN apps a ON a.client_id = t.client_id "
            "WHERE t.expires_at > ?"
        )
        args: list[Any] = [self._clock()]
        if client_id is not None:
            sql += " AND t.client_id = ?"
            args.append(client_id)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY t.created, t.token_hash", args).fetchall()
        return [_token_info(r) for r in rows]

    def purge_expired(self) -> int:
        """Delete expired tokens; returns how many."""
        with self._lock:
            cur = self._conn.execute("DELETE FROM tokens WHERE expires_at <= ?", (self._clock(),))
        return cur.rowcount

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (the lock is held)."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")


_APP_COLUMNS = "client_id, name, user_id, created, disabled"
_TOKEN_COLUMNS = "t.token_hash, t.client_id, a.name, a.user_id, t.created, t.expires_at"


def _app(row: tuple[Any, ...]) -> App:
    client_id, name, user_id, created, disabled = row
    return App(
        client_id=client_id,
        name=name,
        user_id=user_id,
        created=datetime.fromtimestamp(created, UTC),
        disabled=bool(disabled),
    )


def _token_info(row: tuple[Any, ...]) -> TokenInfo:
    token_hash, client_id, app_name, user_id, created, expires_at = row
    return TokenInfo(
        id=token_hash[:TOKEN_ID_LEN],
        client_id=client_id,
        app_name=app_name,
        user_id=user_id,
        issued=datetime.fromtimestamp(created, UTC),
        expires=datetime.fromtimestamp(expires_at, UTC),
    )


def _migrate(conn: sqlite3.Connection, path: Path | str) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise DirectoryError(
            f"database {path}: schema version {version} is newer than this pbx-bridge "
            f"supports ({len(MIGRATIONS)}); upgrade pbx-bridge"
        )
    for target in range(version + 1, len(MIGRATIONS) + 1):
        # One transaction per step: a failed step leaves the previous version intact.
        # The version is read again under the write lock: another process opening the
        # same new file at the same moment may have migrated it meanwhile.
        conn.execute("BEGIN IMMEDIATE")
        try:
            if int(conn.execute("PRAGMA user_version").fetchone()[0]) < target:
                for statement in _statements(MIGRATIONS[target - 1]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _statements(script: str) -> list[str]:
    """Split an SQL script into complete statements."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        raise ValueError(f"incomplete SQL statement in migration: {buf.strip()[:60]!r}")
    return out
