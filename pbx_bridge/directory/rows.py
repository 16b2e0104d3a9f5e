"""The directory rows: organizations, users and extensions.

Loaded (upserted, all or nothing) from a TOML file or a :class:`DirectoryFile`, checked
for consistency as a whole first, and looked up in one snapshot kept in memory, dropped
when the stored rows change (:class:`~pbx_bridge.directory.db.ChangeCheck`; look-ups
check at most every ``change_check_interval`` seconds on PostgreSQL).
"""

from __future__ import annotations

import contextlib
import gc
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError
from sqlalchemy import bindparam, literal, select, update
from sqlalchemy.engine import Connection

from pbx_bridge.config import validation_messages
from pbx_bridge.directory.db import DirectoryDb, DirectoryError
from pbx_bridge.directory.models import (
    DirectoryFile,
    Extension,
    Organization,
    RecordingPolicy,
    RecordingSetup,
    User,
    device_of_channel,
)
from pbx_bridge.storage.schema import extensions, organizations, recording_policies, users

__all__ = ["DirectoryRows", "LoadSummary", "Snapshot", "read_directory_file"]


class LoadSummary(NamedTuple):
    organizations: int
    users: int
    extensions: int


@dataclass(frozen=True)
class Snapshot:
    """Every row, indexed as the look-ups need it."""

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
    ) -> Snapshot:
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


class DirectoryRows:
    """Organizations, users and extensions: loading them, and the look-ups."""

    def __init__(self, db: DirectoryDb) -> None:
        self._db = db
        self._changes = db.change_check()
        self._cached: Snapshot | None = None

    # ----------------------------------------------------------------- writes

    def load(self, data: DirectoryFile, *, source: str | None = None) -> LoadSummary:
        """Upsert organizations, users and extensions, all or nothing.

        Nothing is deleted, and only rows that differ from the stored ones are written: a
        load that changes nothing writes nothing, so the running service's caches (and its
        AstDB policy) stay as they are (issue 16). The directory that results (what is
        stored, updated with ``data``) must be consistent, or :class:`DirectoryError` is
        raised and nothing is written: every user's organization and every extension's
        owner exists, an extension's owner belongs to an organization whose code prefixes the number
        (``0003*210`` -> code ``0003``), organization codes and devices are unique.
        """
        prefix = f"{source}: " if source else ""
        try:
            with self._db.transaction(write=True, invalidates=True) as conn:
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
                changed = _changed_rows(current, data)
                if not (changed.organizations or changed.users or changed.extensions):
                    raise _Unchanged  # rolled back: the caches stay valid everywhere
                _write_rows(self._db, conn, changed)
        except _Unchanged:
            pass
        except DirectoryError as exc:
            if str(exc).startswith(prefix):
                raise
            raise DirectoryError(f"{prefix}{exc}") from None
        return LoadSummary(len(data.organizations), len(data.users), len(data.extensions))

    def load_toml(self, path: str | Path) -> LoadSummary:
        """Validate and :meth:`load` a directory TOML file (config/directory.example.toml)."""
        path = Path(path)
        return self.load(read_directory_file(path), source=str(path))

    # ----------------------------------------------------------------- reads

    def snapshot(self) -> Snapshot:
        """The rows as stored now (from memory unless they changed)."""
        with self._db.lock:
            if self._changes.changed(strict=False):
                self._cached = None
            if self._cached is None:
                with self._db.transaction() as conn, _gc_paused():
                    self._cached = _read_rows(conn)
            return self._cached

    def organization(self, org_id: int) -> Organization | None:
        return self.snapshot().organizations.get(org_id)

    def user(self, user_id: int) -> User | None:
        return self.snapshot().users.get(user_id)

    def extension(self, number: str) -> Extension | None:
        return self.snapshot().extensions.get(number)

    def extensions_of_user(self, user_id: int) -> list[Extension]:
        """The user's extensions, sorted by number."""
        return list(self.snapshot().by_user.get(user_id, ()))

    def extensions_by_device(self) -> dict[str, Extension]:
        """Device (``PJSIP/0003*210``) -> extension. A fresh dict: the caller may keep it."""
        return dict(self.snapshot().by_device)

    def extension_for_channel(self, channel: str) -> Extension | None:
        """The extension whose device a channel (``PJSIP/0003*210-0000002a``) is on."""
        return self.snapshot().by_device.get(device_of_channel(channel))

    def all_extensions(self) -> list[Extension]:
        """Every extension, sorted by number."""
        return list(self.snapshot().extensions.values())

    def all_users(self) -> list[User]:
        return sorted(self.snapshot().users.values(), key=lambda u: u.id)

    def all_organizations(self) -> list[Organization]:
        return sorted(self.snapshot().organizations.values(), key=lambda o: o.id)

    def organization_of_extension(self, extension: Extension) -> Organization | None:
        """The organization owning an extension (its owner's), for ownerId/ownerName."""
        snap = self.snapshot()
        owner = snap.users.get(extension.owner)
        if owner is None or owner.organization is None:
            return None
        return snap.organizations.get(owner.organization)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic GC while a snapshot is built: its 100,000s of new objects (none of them
    garbage) would trigger collections that traverse them all, over half of the read's
    CPU at 50,000 extensions (issue 16)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Unchanged(Exception):
    """A load that changes no row: its transaction is rolled back, nothing is bumped."""


def _changed_rows(current: Snapshot, data: DirectoryFile) -> DirectoryFile:
    """The rows of ``data`` that are new or differ from ``current`` (models compare by
    value; an organization's recordings policy is part of it)."""
    return DirectoryFile.model_construct(
        organizations=[o for o in data.organizations if current.organizations.get(o.id) != o],
        users=[u for u in data.users if current.users.get(u.id) != u],
        extensions=[e for e in data.extensions if current.extensions.get(e.number) != e],
    )


def read_directory_file(path: Path) -> DirectoryFile:
    """A directory TOML file, validated; a :class:`DirectoryError` names what is wrong."""
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
        return DirectoryFile.model_validate(raw)
    except ValidationError as exc:
        msgs = validation_messages(exc, show_input=True)
        raise DirectoryError(f"{path}: " + "; ".join(msgs)) from None


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


def _read_organizations(conn: Connection) -> list[Organization]:
    """Each with its recording policy (the defaults where it has no row)."""
    policy = recording_policies.c
    stmt = select(
        organizations.c.id, organizations.c.name, organizations.c.code,
        policy.retention_days, policy.users_may_delete,
    ).outerjoin(recording_policies, policy.organization == organizations.c.id)
    return [
        Organization(
            id=i, name=n, code=c,
            recordings=RecordingPolicy(retention_days=days, users_may_delete=bool(delete)),
        )
        for i, n, c, days, delete in conn.execute(stmt)
    ]


def _read_rows(conn: Connection) -> Snapshot:
    orgs = _read_organizations(conn)
    users_ = [
        User(id=i, name=n, role=r, organization=o)
        for i, n, r, o in conn.execute(
            select(users.c.id, users.c.name, users.c.role, users.c.organization)
        )
    ]
    # A handful of distinct setups, shared (immutable): a third less memory per extension.
    setups: dict[tuple[bool, str, str], RecordingSetup] = {}
    exts = [
        Extension(
            number=num,
            owner=owner,
            device=dev,
            recording=_shared_setup(setups, bool(en), str(trig), str(fmt)),
            node=node,
        )
        for num, owner, dev, en, trig, fmt, node in conn.execute(
            select(
                extensions.c.number,
                extensions.c.owner,
                extensions.c.device,
                extensions.c.recording_enabled,
                extensions.c.recording_trigger,
                extensions.c.recording_format,
                extensions.c.node,
            )
        )
    ]
    return Snapshot.build(orgs, users_, exts)


def _shared_setup(
    setups: dict[tuple[bool, str, str], RecordingSetup], enabled: bool, trigger: str, fmt: str
) -> RecordingSetup:
    key = (enabled, trigger, fmt)
    setup = setups.get(key)
    if setup is None:
        setup = setups[key] = RecordingSetup.model_validate(
            {"enabled": enabled, "trigger": trigger, "format": fmt}
        )
    return setup


def _write_rows(db: DirectoryDb, conn: Connection, data: DirectoryFile) -> None:
    if data.organizations:
        _upsert(
            db,
            conn,
            organizations,
            [{"id": o.id, "name": o.name, "code": o.code} for o in data.organizations],
        )
        # An organization in the file is all of it: no `recordings` = the defaults.
        _upsert(db, conn, recording_policies, [
            {"organization": o.id, "retention_days": o.recordings.retention_days,
             "users_may_delete": int(o.recordings.users_may_delete)}
            for o in data.organizations
        ])  # fmt: skip
    if data.users:
        _upsert(
            db,
            conn,
            users,
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
    _upsert(db, conn, extensions, [_extension_row(e) for e in data.extensions])


def _upsert(db: DirectoryDb, conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows``, or update every other column of the row whose primary key is taken."""
    (key,) = table.primary_key.columns
    stmt = db.upsert(table)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[key],
            set_={name: getattr(stmt.excluded, name) for name in rows[0] if name != key.name},
        ),
        rows,
    )


def _extension_row(ext: Extension) -> dict[str, Any]:
    return {
        "number": ext.number,
        "owner": ext.owner,
        "device": ext.device,
        "recording_enabled": int(ext.recording.enabled),
        "recording_trigger": ext.recording.trigger,
        "recording_format": ext.recording.format,
        "node": ext.node,
    }
