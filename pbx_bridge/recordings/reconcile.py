"""Reconciling the catalog with the recordings folders, pure: what a folder scan found
(scan.py) and what the catalog knows in, the rows to add or change out. No I/O.

A file named by recording/naming.py's scheme
``<organization>/<extension>/<YYYY-MM-DD>/<call id>-<view id>-<HHMMSS>.<wav|WAV>`` that
no row names and no live channel writes was recorded while the bridge was away (the
dialplan's "always" or *1, or a run that began and ended while it was down): it becomes
a row. A `completed` row whose file is gone becomes `missing`; a `missing` row whose
file is back is read again. A row with no file (its PBX_REC stamp never seen) whose
extension and call match a found file is given that file instead of a second row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from pbx_bridge.recordings.catalog import RecordingRow, file_id, format_of

__all__ = [
    "Folder", "FoundFile", "KnownFile", "Owner", "Plan", "Scan", "parse_name", "plan",
]

# <call id>-<view id>-<HHMMSS>.<wav|WAV>: call id = 20 hex digits (calls/tracker.call_id).
# Fixed-width classes and one fullmatch: no backtracking on what a folder holds.
_NAME = re.compile(r"([0-9a-f]{20})-([0-9]{2})-([0-9]{6})\.(wav|WAV)")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ORGANIZATION = re.compile(r"[0-9]{1,9}")
_EXTENSION = re.compile(r"[0-9A-Za-z*#_.+-]{1,64}")  # naming._SAFE
_ADOPT_WINDOW = 5.0  # seconds between a fileless row's start and a file's name


@dataclass(frozen=True, slots=True)
class Folder:
    """A recordings folder: where this host reads it, and the prefix of the file names
    Asterisk gives for files in it ("" = names relative to the monitor folder)."""

    host: Path
    asterisk: str = ""

    def file_name(self, relative: PurePosixPath) -> str:
        return f"{self.asterisk.rstrip('/')}/{relative}" if self.asterisk else str(relative)


@dataclass(frozen=True, slots=True)
class FoundFile:
    """A file of our naming scheme, as its path says (scan.py checks nothing else)."""

    path: Path  # host path
    file: str  # as Asterisk names it
    organization: int
    extension: str
    call_id: str
    view_id: str
    started: float  # from the name (UTC, whole seconds)
    mtime: float


@dataclass(slots=True)
class Scan:
    """What a walk of the folders saw: the files of our scheme, every regular file (host
    paths), and which folders were read whole (a folder that is absent or that could
    not be read everywhere proves no file vanished: it may be a mount that is down)."""

    found: list[FoundFile] = field(default_factory=list)
    present: set[str] = field(default_factory=set)
    complete: list[Path] = field(default_factory=list)

    def proves_absent(self, host_path: str) -> bool:
        path = Path(host_path)
        return host_path not in self.present and any(
            path.is_relative_to(folder) for folder in self.complete
        )


@dataclass(frozen=True, slots=True)
class KnownFile:
    """What the reconciler needs of a catalogued row (store.RecordingStore.known)."""

    id: str
    state: str
    host_path: str | None
    extension: str
    call_id: str
    started: float
    has_file: bool
    node: str | None = None  # the row's PBX node (None: the first)


@dataclass(frozen=True, slots=True)
class Owner:
    organization: int
    owner: int


@dataclass(slots=True)
class Plan:
    new: list[RecordingRow] = field(default_factory=list)  # to read, then insert
    # (row id, its file, who the policy says started it: the row said "pbx" for want of
    # the stamp)
    adopt: list[tuple[str, FoundFile, str]] = field(default_factory=list)
    # (row id, host path): completed rows whose file is gone; missing rows whose file is back
    vanished: list[tuple[str, str]] = field(default_factory=list)
    returned: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[tuple[Path, str]] = field(default_factory=list)  # (file, why)


def parse_name(folder: Folder, relative: PurePosixPath, mtime: float) -> FoundFile | None:
    """The file's facts from its path under the folder (the last four parts: a relative
    ``recordings.directory`` puts more in front), or None if not our scheme."""
    if len(relative.parts) < 4:
        return None
    org, extension, day, name = relative.parts[-4:]
    found = _NAME.fullmatch(name)
    if not (found and _DATE.fullmatch(day) and _ORGANIZATION.fullmatch(org)
            and _EXTENSION.fullmatch(extension)) or extension in (".", ".."):
        return None
    call, view, hms, _suffix = found.groups()
    try:
        when = datetime.strptime(f"{day} {hms}", "%Y-%m-%d %H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return FoundFile(
        path=folder.host / relative, file=folder.file_name(relative), organization=int(org),
        extension=extension, call_id=call, view_id=view, started=when.timestamp(),
        mtime=mtime,
    )


def plan(
    scan: Scan,
    known: Iterable[KnownFile],
    *,
    live_paths: set[str],
    live_calls: set[str],
    owner_of: Callable[[str], Owner | None],
    started_by: Callable[[str], str],
    node: str | None = None,
    owns: Callable[[str | None], bool] = lambda node: True,
) -> Plan:
    """What to change. ``live_paths``: files that live channels or running rows write;
    ``live_calls``: call ids with a live recording whose file is not known yet (their
    files are left alone: the event path catalogues them). With several PBX nodes, a
    pass walks one node's folders: ``node`` is given to the rows it adds, and only the
    rows it ``owns`` (by their node) may change; every row's file counts as catalogued
    (two nodes may share a folder)."""
    out = Plan()
    by_path: dict[str, KnownFile] = {}
    fileless: list[KnownFile] = []
    for row in known:
        if row.host_path is not None:
            by_path[row.host_path] = row
        elif not row.has_file and row.state not in ("recording", "paused") and owns(row.node):
            fileless.append(row)
    for path, row in by_path.items():
        if not owns(row.node):
            continue  # another node's: its own passes say whether its file vanished
        if row.state == "completed" and scan.proves_absent(path):
            out.vanished.append((row.id, path))
        elif row.state == "missing" and path in scan.present:
            out.returned.append((row.id, path))
    for f in scan.found:
        key = str(f.path)
        if key in by_path or key in live_paths or f.call_id in live_calls:
            continue
        _place_found(out, f, fileless, owner_of, started_by, node)
    return out


def _place_found(
    out: Plan,
    f: FoundFile,
    fileless: list[KnownFile],
    owner_of: Callable[[str], Owner | None],
    started_by: Callable[[str], str],
    node: str | None,
) -> None:
    owner = owner_of(f.extension)
    if owner is None:
        out.ignored.append((f.path, f"extension {f.extension} is not in the directory"))
        return
    if owner.organization != f.organization:
        out.ignored.append((f.path, f"extension {f.extension} is not in organization "
                                    f"{f.organization}"))
        return
    match = _fileless_match(f, fileless)
    if match is not None:
        fileless.remove(match)
        out.adopt.append((match.id, f, started_by(f.extension)))
        return
    out.new.append(RecordingRow(
        id=file_id(str(f.path)), extension=f.extension, call_id=f.call_id, view_id=f.view_id,
        started=f.started, organization=owner.organization, owner=owner.owner,
        format=format_of(f.file), file=f.file, host_path=str(f.path),
        started_by=started_by(f.extension), stopped=max(f.mtime, f.started), node=node,
    ))


def _fileless_match(f: FoundFile, fileless: list[KnownFile]) -> KnownFile | None:
    near = [row for row in fileless
            if (row.extension, row.call_id) == (f.extension, f.call_id)
            and abs(row.started - f.started) <= _ADOPT_WINDOW]
    return min(near, key=lambda row: abs(row.started - f.started), default=None)
