"""The reconciler's passes (feature.py runs one after every resync, the first at
start-up): the catalog catches up with the recordings folders.

A pass: walk the folders (scan.py, in a thread); plan against the rows and the live
channels (reconcile.py, pure); read the files it would add, or that came back, off the
loop (sha256 of those only: a catalogued file is never read again); then, holding the
catalog's write lock, plan again against the rows and channels of that moment (an
event may have catalogued a file meanwhile) and write what both plans agree on. One
pass at a time; asking during a pass runs one more after it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pbx_bridge.config import RecordingsSettings
from pbx_bridge.recordings import scan, wavfile
from pbx_bridge.recordings.catalog import RecordingRow, finish, format_of
from pbx_bridge.recordings.reconcile import FoundFile, Owner, Plan, Scan, plan
from pbx_bridge.recordings.store import RecordingStore

__all__ = ["Live", "Reconciler"]

log = logging.getLogger("pbx_bridge.recordings")

# (host paths that live channels or unwritten rows name, call ids that record a file
# not known yet): their files are the event path's.
Live = tuple[set[str], set[str]]


@dataclass(slots=True)
class _Read:
    facts: dict[str, wavfile.FileFacts] = field(default_factory=dict)  # by host path
    gone: set[str] = field(default_factory=set)  # host paths lstat says do not exist


class Reconciler:
    def __init__(
        self,
        store: RecordingStore,
        *,
        settings: Callable[[], RecordingsSettings],
        live: Callable[[], Live],
        owner_of: Callable[[str], Owner | None],
        started_by: Callable[[str], str],
        write_lock: asyncio.Lock,
        saved: Callable[[list[RecordingRow]], None] = lambda rows: None,
        node: str | None = None,
        owns: Callable[[str | None], bool] = lambda node: True,
    ) -> None:
        """``node``/``owns``: the PBX node whose folders ``settings`` names, and which
        rows are its (reconcile.plan)."""
        self.store = store
        self.node = node
        self._owns = owns
        self._settings = settings
        self._live = live
        self._owner_of = owner_of
        self._started_by = started_by
        self._write_lock = write_lock
        self._saved = saved  # told the rows a pass wrote (the events feature listens)
        self._running = False
        self._again = False
        self._ignored: set[Path] = set()  # logged once each
        self.passes = 0

    async def run(self) -> None:
        if self._running:
            self._again = True
            return
        self._running = True
        try:
            self._again = True
            while self._again:
                self._again = False
                try:
                    await self._pass()
                except Exception:  # the next resync tries again
                    log.exception("recordings: reconciling with the folders failed")
                self.passes += 1
        finally:
            self._running = False

    async def _pass(self) -> list[RecordingRow]:
        found = await asyncio.to_thread(scan.scan, scan.folders(self._settings()))
        read = await asyncio.to_thread(_read, await self._plan(found))
        async with self._write_lock:
            final = await self._plan(found)
            rows = await asyncio.to_thread(self._apply, final, read)
        self._saved(rows)
        self._log(final, rows)
        return rows

    async def _plan(self, found: Scan) -> Plan:
        known = await asyncio.to_thread(self.store.known)
        live_paths, live_calls = self._live()
        return plan(found, known, live_paths=live_paths, live_calls=live_calls,
                    owner_of=self._owner_of, started_by=self._started_by,
                    node=self.node, owns=self._owns)

    def _apply(self, todo: Plan, read: _Read) -> list[RecordingRow]:
        """Blocking: the rows both plans agree on, finished from what was read, saved."""
        rows = [row for row in todo.new if row.host_path in read.facts]
        for row in rows:
            finish(row, read.facts[row.host_path or ""])
        files = {row_id: (f, by) for row_id, f, by in todo.adopt if str(f.path) in read.facts}
        paths = {row_id: path for row_id, path in todo.returned if path in read.facts}
        paths |= {row_id: str(f.path) for row_id, (f, _) in files.items()}
        paths |= {row_id: path for row_id, path in todo.vanished if path in read.gone}
        for row in self.store.get_many(list(paths)):
            if row.id in files:
                _give_file(row, *files[row.id])
            path = paths[row.id]
            finish(row, read.facts.get(path) or wavfile.FileFacts(missing=True))
            rows.append(row)
        self.store.save_all(rows)
        return rows

    def _log(self, done: Plan, rows: list[RecordingRow]) -> None:
        for path, why in done.ignored:
            if path not in self._ignored:
                self._ignored.add(path)
                log.warning("recordings: %s not catalogued: %s", path, why)
        for row in rows:
            log.info("recording %s reconciled with %s: %s%s", row.id, row.host_path,
                     row.state, f" ({row.reason})" if row.reason else "")


def _read(todo: Plan) -> _Read:
    """Blocking: the files to add or that came back, read whole (duration, SHA-256);
    the ones that seem gone, checked once more (never followed if a link)."""
    out = _Read()
    wanted = [str(row.host_path) for row in todo.new]
    wanted += [str(f.path) for _, f, _ in todo.adopt]
    wanted += [path for _, path in todo.returned]
    for path in wanted:
        if _regular(path):  # not a link put there since the walk
            facts = wavfile.inspect(Path(path))
            if not facts.missing:
                out.facts[path] = facts
    for _, path in todo.vanished:
        try:
            os.lstat(path)
        except FileNotFoundError:
            out.gone.add(path)
        except OSError:
            pass  # unreadable is not gone
    return out


def _regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _give_file(row: RecordingRow, f: FoundFile, started_by: str) -> None:
    row.file, row.host_path, row.format = f.file, str(f.path), format_of(f.file)
    if row.started_by == "pbx":  # said for want of the stamp, which names our files
        row.started_by = started_by
    if row.stopped is None:
        row.stopped = max(f.mtime, f.started)
