"""The persisted directory: organizations, users, extensions, apps and bearer tokens.

Stored through :mod:`pbx_bridge.storage` (SQLite by default, or PostgreSQL; the schema is
versioned by its migrations). Secrets are never stored: app client secrets and bearer
tokens are kept as SHA-256 hex digests only.

The API reads the directory rows (organizations, users, extensions) and authenticates a
token on every request, so both are kept in memory: the rows as one snapshot, the tokens
seen as a bounded map of token hash -> (expiry, principal). Both are dropped when this
process writes something that can make them wrong, and when another process did
(e.g. ``pbx-bridge directory load`` or ``token revoke`` while the service runs): every
such write bumps the ``directory`` row of ``cache_versions``, and
:meth:`~pbx_bridge.storage.Database.cache_generation` tells cheaply whether that happened
(SQLite: ``PRAGMA data_version``, no I/O; PostgreSQL: one primary-key read). Token
authentication checks strictly, so a revocation from another process is honoured on the
very next request; look-ups between requests (AMI events) check at most every
``change_check_interval`` seconds on PostgreSQL.

One :class:`Directory` may be shared by threads.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import threading
import time
import tomllib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError
from sqlalchemy import Row, and_, bindparam, delete, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from pbx_bridge.config import Settings, validation_messages
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
from pbx_bridge.storage import Database, Migrate, StorageError, ensure_schema
from pbx_bridge.storage.schema import apps, extensions, organizations, tokens, users

__all__ = ["TOKEN_ID_LEN", "Directory", "DirectoryError", "LoadSummary", "Migrate", "token_id"]

# The cache_versions row this store's caches follow.
_CACHE = "directory"
# Tokens remembered at most by the authentication cache (least recently used go first).
_TOKEN_CACHE_SIZE = 10_000

_MAX_CREDENTIAL_LEN = 512
# A token's public name: this many hex digits of its SHA-256 (48 bits: unique in any
# real table, and `token revoke` refuses an ambiguous one anyway).
TOKEN_ID_LEN = 12
# `token revoke ID` takes a prefix of an id, at least this long.
_MIN_TOKEN_ID_PREFIX = 6
_HEX = frozenset("0123456789abcdef")
# Compared against when a client id is unknown, so that both paths cost the same.
_DUMMY_HASH = hashlib.sha256(b"pbx-bridge: no such client").hexdigest()


class DirectoryError(StorageError):
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
    """Organizations, users, extensions, apps and tokens, on the storage layer."""

    def __init__(
        self,
        db: Database,
        *,
        token_ttl: int = 3600,
        max_token_ttl: int = 31536000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if token_ttl <= 0 or max_token_ttl <= 0:
            raise ValueError("token TTLs must be positive")
        self._db = db
        self._lock = threading.RLock()
        self._clock = clock
        self.token_ttl = min(token_ttl, max_token_ttl)
        self.max_token_ttl = max_token_ttl
        self._snapshot_cache: _Snapshot | None = None
        self._generation: int | None = None
        self._tokens: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

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
        with self._lock:
            self._db.close()

    def __enter__(self) -> Directory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def path(self) -> Path | str:
        """The SQLite file (``":memory:"``), or the database URL with its password masked."""
        return self._db.path

    @property
    def database(self) -> Database:
        return self._db

    @property
    def schema_revision(self) -> str | None:
        from pbx_bridge.storage import schema_state

        return schema_state(self._db).revision

    @contextlib.contextmanager
    def _transaction(self, *, write: bool = False, invalidates: bool = False) -> Iterator[
        Connection
    ]:
        """A storage transaction; database errors become one-line DirectoryErrors."""
        try:
            with self._db.transaction(
                write=write, invalidates=_CACHE if invalidates else None
            ) as conn:
                yield conn
        except IntegrityError as exc:
            raise DirectoryError(str(self._db.error(exc))) from None
        except SQLAlchemyError as exc:
            raise DirectoryError(str(self._db.error(exc))) from None

    def _upsert(self, table: Any) -> Any:
        dialect = postgresql if self._db.backend == "postgresql" else sqlite
        return dialect.insert(table)

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
        try:
            with self._lock, self._transaction(write=True, invalidates=True) as conn:
                current = _read_rows(conn)
                orgs = dict(current.organizations)
                orgs.update((o.id, o) for o in data.organizations)
                users_ = dict(current.users)
                users_.update((u.id, u) for u in data.users)
                exts = dict(current.extensions)
                exts.update((e.number, e) for e in data.extensions)
                errors = _integrity_errors(orgs, users_, exts)
                if errors:
                    raise DirectoryError(prefix + "; ".join(errors))
                self._write_rows(conn, data)
        except DirectoryError as exc:
            if str(exc).startswith(prefix):
                raise
            raise DirectoryError(f"{prefix}{exc}") from None
        return LoadSummary(len(data.organizations), len(data.users), len(data.extensions))

    def _write_rows(self, conn: Connection, data: DirectoryFile) -> None:
        if data.organizations:
            stmt = self._upsert(organizations)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[organizations.c.id],
                    set_={"name": stmt.excluded.name, "code": stmt.excluded.code},
                ),
                [{"id": o.id, "name": o.name, "code": o.code} for o in data.organizations],
            )
        if data.users:
            stmt = self._upsert(users)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[users.c.id],
                    set_={
                        "name": stmt.excluded.name,
                        "role": stmt.excluded.role,
                        "organization": stmt.excluded.organization,
                    },
                ),
                [
                    {"id": u.id, "name": u.name, "role": u.role, "organization": u.organization}
                    for u in data.users
                ],
            )
        if not data.extensions:
            return
        # Devices may move between extensions within one load: free them first.
        conn.execute(
            update(extensions)
            .where(extensions.c.number == bindparam("moving"))
            .values(device=literal("~moving~").concat(extensions.c.number)),
            [{"moving": e.number} for e in data.extensions],
        )
        stmt = self._upsert(extensions)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[extensions.c.number],
                set_={
                    name: getattr(stmt.excluded, name)
                    for name in (
                        "owner",
                        "device",
                        "recording_enabled",
                        "recording_trigger",
                        "recording_format",
                    )
                },
            ),
            [
                {
                    "number": e.number,
                    "owner": e.owner,
                    "device": e.device,
                    "recording_enabled": int(e.recording.enabled),
                    "recording_trigger": e.recording.trigger,
                    "recording_format": e.recording.format,
                }
                for e in data.extensions
            ],
        )

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

    # ----------------------------------------------------------------- caches

    def _fresh(self, *, strict: bool) -> None:
        """Drop the in-memory caches if the stored data changed since they were filled."""
        try:
            generation = self._db.cache_generation(_CACHE, strict=strict)
        except SQLAlchemyError as exc:
            raise DirectoryError(str(self._db.error(exc))) from None
        if generation != self._generation:
            self._snapshot_cache = None
            self._tokens.clear()
            self._generation = generation

    def _snapshot(self) -> _Snapshot:
        with self._lock:
            self._fresh(strict=False)
            if self._snapshot_cache is None:
                with self._transaction() as conn:
                    self._snapshot_cache = _read_rows(conn)
            return self._snapshot_cache

    # ----------------------------------------------------------------- directory: reads

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
        try:
            with self._db.transaction(write=True) as conn:
                conn.execute(
                    insert(apps).values(
                        client_id=client_id,
                        name=name,
                        user_id=user_id,
                        secret_hash=_sha256(client_secret),
                        created=self._clock(),
                    )
                )
        except IntegrityError as exc:
            raise DirectoryError(f"cannot create app: {self._db.error(exc)}") from None
        except SQLAlchemyError as exc:
            raise DirectoryError(str(self._db.error(exc))) from None
        return client_id, client_secret

    def app(self, client_id: str) -> App | None:
        with self._transaction() as conn:
            row = conn.execute(_APP_SELECT.where(apps.c.client_id == client_id)).first()
        return _app(row) if row else None

    def apps_of_user(self, user_id: int) -> list[App]:
        with self._transaction() as conn:
            rows = conn.execute(
                _APP_SELECT.where(apps.c.user_id == user_id).order_by(
                    apps.c.created, apps.c.client_id
                )
            ).all()
        return [_app(r) for r in rows]

    def all_apps(self) -> list[App]:
        with self._transaction() as conn:
            rows = conn.execute(_APP_SELECT.order_by(apps.c.created, apps.c.client_id)).all()
        return [_app(r) for r in rows]

    def set_app_disabled(self, client_id: str, disabled: bool) -> int:
        """Disable (or enable again) an app. Disabling revokes every token of the app, in
        the same transaction; returns how many tokens were revoked."""
        with self._lock, self._transaction(write=True, invalidates=True) as conn:
            cur = conn.execute(
                update(apps).where(apps.c.client_id == client_id).values(disabled=int(disabled))
            )
            if cur.rowcount == 0:
                raise DirectoryError(f"no app with client id {client_id!r}")
            if not disabled:
                return 0
            return conn.execute(delete(tokens).where(tokens.c.client_id == client_id)).rowcount

    def delete_app(self, client_id: str) -> int:
        """Delete an app and every token of it; returns how many tokens were revoked."""
        with self._lock, self._transaction(write=True, invalidates=True) as conn:
            revoked = conn.execute(delete(tokens).where(tokens.c.client_id == client_id)).rowcount
            cur = conn.execute(delete(apps).where(apps.c.client_id == client_id))
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
        with self._transaction() as conn:
            row = conn.execute(
                select(*_APP_SELECT.selected_columns, apps.c.secret_hash).where(
                    apps.c.client_id == client_id
                )
            ).first()
        stored = row[-1] if row else _DUMMY_HASH
        ok = hmac.compare_digest(_sha256(client_secret), stored)
        return _app(tuple(row[:-1])) if (row and ok) else None

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
        # A new token makes no cache wrong (unknown tokens are never cached): no bump.
        with self._transaction(write=True) as conn:
            known = conn.execute(
                select(apps.c.disabled).where(apps.c.client_id == client_id)
            ).first()
            if known is None:
                raise DirectoryError(f"no app with client id {client_id!r}")
            if known[0]:
                raise DirectoryError(
                    f"app {client_id!r} is disabled (pbx-bridge app enable --app ID)"
                )
            conn.execute(
                insert(tokens).values(
                    token_hash=_sha256(token), client_id=client_id, created=now, expires_at=expires
                )
            )
        return token, datetime.fromtimestamp(expires, UTC)

    def authenticate(self, token: str) -> Principal | None:
        """The principal a bearer token stands for; None if unknown, expired or malformed.

        The lookup is by SHA-256 of the token, so no comparison ever runs on the secret.
        A known token is answered from memory after a strict change check (see the module
        docstring); an unknown one always asks the database (and is not remembered, so
        guessing cannot fill the memory)."""
        if not isinstance(token, str) or not token or len(token) > _MAX_CREDENTIAL_LEN:
            return None
        token_hash = _sha256(token)
        with self._lock:
            self._fresh(strict=True)
            hit = self._tokens.get(token_hash)
            if hit is not None:
                self._tokens.move_to_end(token_hash)
            else:
                hit = self._load_token(token_hash)
                if hit is None:
                    return None
                self._tokens[token_hash] = hit
                if len(self._tokens) > _TOKEN_CACHE_SIZE:
                    self._tokens.popitem(last=False)
        expires_at, principal = hit
        if expires_at <= self._clock():
            return None
        return principal

    def _load_token(self, token_hash: str) -> tuple[float, Principal] | None:
        with self._transaction() as conn:
            row = conn.execute(
                select(
                    tokens.c.expires_at,
                    apps.c.client_id,
                    users.c.id,
                    users.c.role,
                    users.c.organization,
                )
                .select_from(tokens.join(apps).join(users, users.c.id == apps.c.user_id))
                .where(and_(tokens.c.token_hash == token_hash, apps.c.disabled == 0))
            ).first()
        if row is None:
            return None
        values: tuple[Any, ...] = tuple(row)
        expires_at, client_id, user_id, role, organization = values
        principal = Principal(
            user_id=user_id,
            role=role,
            organization_id=None if role == "admin" else organization,
            client_id=client_id,
        )
        return float(expires_at), principal

    def revoke_token(self, token: str, *, client_id: str | None = None) -> bool:
        """Forget a token. True if it existed. With ``client_id``, only a token of that
        app is revoked (RFC 7009: a client revokes its own tokens, never another's)."""
        if not isinstance(token, str) or len(token) > _MAX_CREDENTIAL_LEN:
            return False
        stmt = delete(tokens).where(tokens.c.token_hash == _sha256(token))
        if client_id is not None:
            stmt = stmt.where(tokens.c.client_id == client_id)
        with self._lock, self._transaction(write=True, invalidates=True) as conn:
            return conn.execute(stmt).rowcount > 0

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
        with self._lock, self._transaction(write=True, invalidates=True) as conn:
            # A range on the primary key: the index finds the prefix, no table scan.
            rows = conn.execute(
                _TOKEN_SELECT.where(
                    and_(tokens.c.token_hash >= prefix, tokens.c.token_hash < prefix + "g")
                ).limit(2)
            ).all()
            if not rows:
                raise DirectoryError(f"no token with id {prefix!r}")
            if len(rows) > 1:
                raise DirectoryError(f"token id {prefix!r} is ambiguous: give more digits")
            conn.execute(delete(tokens).where(tokens.c.token_hash == rows[0][0]))
        return _token_info(rows[0])

    def revoke_app_tokens(self, client_id: str) -> int:
        """Revoke every token of an app; returns how many."""
        with self._lock, self._transaction(write=True, invalidates=True) as conn:
            known = conn.execute(select(apps.c.client_id).where(apps.c.client_id == client_id))
            if known.first() is None:
                raise DirectoryError(f"no app with client id {client_id!r}")
            return conn.execute(delete(tokens).where(tokens.c.client_id == client_id)).rowcount

    def list_tokens(self, client_id: str | None = None) -> list[TokenInfo]:
        """The tokens not yet expired (of one app, or of all), oldest first."""
        stmt = _TOKEN_SELECT.where(tokens.c.expires_at > self._clock())
        if client_id is not None:
            stmt = stmt.where(tokens.c.client_id == client_id)
        with self._transaction() as conn:
            rows = conn.execute(stmt.order_by(tokens.c.created, tokens.c.token_hash)).all()
        return [_token_info(r) for r in rows]

    def purge_expired(self) -> int:
        """Delete expired tokens; returns how many. (No cache goes wrong: a remembered
        token's expiry is checked on every use.)"""
        with self._transaction(write=True) as conn:
            cur = conn.execute(delete(tokens).where(tokens.c.expires_at <= self._clock()))
        return cur.rowcount


_APP_SELECT = select(apps.c.client_id, apps.c.name, apps.c.user_id, apps.c.created, apps.c.disabled)
_TOKEN_SELECT = select(
    tokens.c.token_hash,
    tokens.c.client_id,
    apps.c.name,
    apps.c.user_id,
    tokens.c.created,
    tokens.c.expires_at,
).select_from(tokens.join(apps))


def _read_rows(conn: Connection) -> _Snapshot:
    orgs = [
        Organization(id=i, name=n, code=c)
        for i, n, c in conn.execute(
            select(organizations.c.id, organizations.c.name, organizations.c.code)
        )
    ]
    users_ = [
        User(id=i, name=n, role=r, organization=o)
        for i, n, r, o in conn.execute(
            select(users.c.id, users.c.name, users.c.role, users.c.organization)
        )
    ]
    exts = [
        Extension(
            number=num,
            owner=owner,
            device=dev,
            recording=RecordingSetup(enabled=bool(en), trigger=trig, format=fmt),
        )
        for num, owner, dev, en, trig, fmt in conn.execute(
            select(
                extensions.c.number,
                extensions.c.owner,
                extensions.c.device,
                extensions.c.recording_enabled,
                extensions.c.recording_trigger,
                extensions.c.recording_format,
            )
        )
    ]
    return _Snapshot.build(orgs, users_, exts)


def _app(row: Row[Any] | tuple[Any, ...]) -> App:
    client_id, name, user_id, created, disabled = tuple(row)
    return App(
        client_id=client_id,
        name=name,
        user_id=user_id,
        created=datetime.fromtimestamp(created, UTC),
        disabled=bool(disabled),
    )


def _token_info(row: Row[Any] | tuple[Any, ...]) -> TokenInfo:
    token_hash, client_id, app_name, user_id, created, expires_at = tuple(row)
    return TokenInfo(
        id=token_hash[:TOKEN_ID_LEN],
        client_id=client_id,
        app_name=app_name,
        user_id=user_id,
        issued=datetime.fromtimestamp(created, UTC),
        expires=datetime.fromtimestamp(expires_at, UTC),
    )
