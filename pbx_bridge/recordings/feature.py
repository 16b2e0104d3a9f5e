"""The recordings catalog feature, plugged into the PBX link (core/feature.py's hooks).

Every event and resync goes through the pure state machine (catalog.py); each row it
changes is written to the database (store.py) in order, off the event loop. A stopped
row is finished in the background: once the channel is gone, the file's size is
watched until it stops changing, then the file is read (wavfile.py, in a thread) for its
duration, size and SHA-256, or the reason it is unusable. Rows left unfinished by a
bridge that stopped are taken up again when the next one starts (`__init__`). After
every resync (the first at start-up) the reconciler (reconciler.py) catalogues what the
recordings folders hold that no event showed, and marks rows whose file vanished. Every
``[recordings] sweep_interval`` seconds (and at start) the retention sweep (sweep.py)
deletes what the organizations' retention expired, counted for /metrics.

Several PBX nodes (issue 16): the catalog is one (one store, one write queue, one
sweep), and hears every node: a `NodeCatalog` per node is plugged into that node's link
with the state machine on that node's tracker and a reconciler of that node's folders
(``[[pbx]] recordings``, else ``[recordings]``'s). Each row names its node; a node's
reconciler changes its own node's rows only, and a row's file is read where its node's
folders put it (``host_path``, set when the row learns its file).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pbx_bridge.calls.tracker import call_id
from pbx_bridge.config import NodeRecordingsSettings, RecordingsSettings
from pbx_bridge.core.feature import Event, Feature
from pbx_bridge.core.link import PbxLink
from pbx_bridge.core.nodes import on_node
from pbx_bridge.core.quiet import Quiet, QuietWriter
from pbx_bridge.directory.store import Directory
from pbx_bridge.errors import RecordingUndeletable
from pbx_bridge.recording.rules import on_demand, records_always
from pbx_bridge.recordings import wavfile
from pbx_bridge.recordings.catalog import Catalog, Origin, RecordingRow, finish
from pbx_bridge.recordings.reconcile import Owner
from pbx_bridge.recordings.reconciler import Live, Reconciler
from pbx_bridge.recordings.retention import FINISHED
from pbx_bridge.recordings.store import RecordingQuery, RecordingStore
from pbx_bridge.recordings.sweep import Sweeper, SweepReport
from pbx_bridge.storage.coordination import ROW, Coordination
from pbx_bridge.storage.url import StorageError

__all__ = ["CatalogNode", "NodeCatalog", "RecordingsCatalog", "host_path"]

log = logging.getLogger("pbx_bridge.recordings")
_SETTLE_CHECKS = 120  # size checks before a file that keeps changing is read anyway
# Rows finished at once (each holds its row's lock with replicas, reads the file whole and
# waits for its write). A burst of thousands of stops (the PostgreSQL bench) queued that
# many row locks on the locks' connection ahead of the requests' view locks and that many
# reads on the writer's lock ahead of its batches: the AMI link's Ping went unanswered.
_FINISHING_AT_ONCE = 32


def host_path(file: str, settings: RecordingsSettings) -> Path | None:
    """Where this host reads ``file`` as Asterisk named it: a relative name under the
    monitor folder, an absolute one under ``host_root``. PBX_REC is a channel variable
    that anything in the dialplan (or another AMI client) may set, and the catalog
    serves and deletes the file it names: so None for a name that climbs out (``..``) or
    lands outside the recordings folders (the monitor folder, and ``[recordings]
    directory`` when that is absolute)."""
    name = PurePosixPath(file)
    if ".." in name.parts or not file.strip():
        return None
    root = settings.host_root.rstrip("/")
    path = Path(root + file) if name.is_absolute() else Path(settings.monitor_dir) / name
    folders = [Path(settings.monitor_dir)]
    if settings.directory.startswith("/"):
        folders.append(Path(root + settings.directory))
    if not any(path.is_relative_to(folder) for folder in folders):
        return None
    return path


def live_files(nodes: Iterable[NodeCatalog], unwritten: Iterable[RecordingRow]) -> Live:
    """The files the event path owns: every node's live channels', running rows',
    unwritten rows' (by host path, or by call id while the file is not known yet):
    two nodes may share a folder."""
    paths: set[str] = set()
    calls: set[str] = set()
    running: list[RecordingRow] = []
    for node in nodes:
        settings = node.settings()
        for ch in node.link.tracker.channels.values():
            path = host_path(ch.rec_file, settings) if ch.rec_file else None
            if path is not None:
                paths.add(str(path))
            elif ch.recording is not None:
                calls.add(call_id(ch.linkedid))
        running += node.catalog.running.values()
    for row in (*running, *unwritten):
        if row.host_path:
            paths.add(row.host_path)
        else:
            calls.add(row.call_id)
    return paths, calls


def _size(path: Path) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class CatalogNode:
    """What the catalog needs of one PBX node: its name, its link, who started a file
    through its recording feature, and where its files are read (keys not given:
    ``[recordings]``'s)."""

    name: str
    link: PbxLink
    origin_of: Callable[[str], Origin | None]
    folders: NodeRecordingsSettings = field(default_factory=NodeRecordingsSettings)


class RecordingsCatalog:
    def __init__(
        self,
        nodes: Sequence[CatalogNode],
        directory: Directory,
        settings: RecordingsSettings,
        *,
        clock: Callable[[], float] = time.time,
        coordination: Coordination | None = None,
        quiet: Quiet | None = None,
        write_delay: float = 0.0,
    ) -> None:
        """``nodes``: every PBX node, the first being the node of rows that name none.
        ``coordination``: with replicas, which of them sweeps, reconciles and finishes
        a row (docs/design.md, "Replicas"); None: this process does.
        ``quiet``, ``write_delay``: a row's write waits up to ``write_delay`` seconds for
        no request in flight (core/quiet.py)."""
        self.directory = directory
        self.settings = settings  # [recordings]; a node's folders override its own keys
        self.coordination = coordination or Coordination(None)
        self.store = RecordingStore(directory.database)
        self._clock = clock
        # Rows are written in batches by one writer, when no request is in flight.
        self._writer = QuietWriter(quiet or Quiet(), write_delay, self._write_batch)
        self._finishing: set[str] = set()
        self._finish_slots = asyncio.Semaphore(_FINISHING_AT_ONCE)
        self.sweeper = Sweeper(self.store, directory, clock=clock)
        self._sweeping: asyncio.Task[None] | None = None
        self.swept: dict[str, int] = {}  # state of the rows swept -> how many
        self.swept_bytes = 0
        # Told each row as it is saved (a copy, in order): the events feature.
        self.on_saved: list[Callable[[RecordingRow], None]] = []
        self._unwritten: dict[int, RecordingRow] = {}  # rows queued for the database
        self._write_ids = itertools.count()
        self.nodes = [NodeCatalog(self, node, first=i == 0) for i, node in enumerate(nodes)]
        self._by_name = {node.name: node for node in self.nodes}
        # Rows a stopped bridge left running: their channels are checked on their node's
        # first resync (still recording: kept; gone: finished), so nothing is listed
        # twice. A row of a node this bridge does not have is that node's bridge's.
        for row in self.store.unfinished():
            node = self._node_of(row.node)
            if node is not None:
                node.catalog.running[row.channel] = row

    # The first node's parts, as code and tests written for one node know them.
    @property
    def link(self) -> PbxLink:
        return self.nodes[0].link

    @property
    def catalog(self) -> Catalog:
        return self.nodes[0].catalog

    @property
    def reconciler(self) -> Reconciler:
        return self.nodes[0].reconciler

    def on_event(self, ev: Event) -> None:
        """The first node's hook (tests feed it directly)."""
        self.nodes[0].on_event(ev)

    def on_snapshot(self, rows: list[Event]) -> None:
        self.nodes[0].on_snapshot(rows)

    def _node_of(self, name: str | None) -> NodeCatalog | None:
        """The node a row names (None: the first), if this bridge has it."""
        return self.nodes[0] if name is None else self._by_name.get(name)

    def settings_of(self, name: str | None) -> RecordingsSettings:
        """Where the files of the node a row names are read."""
        node = self._node_of(name)
        return node.settings() if node is not None else self.settings

    def _dialplan_trigger(self, number: str) -> str:
        """Who in the dialplan started a stamped recording the bridge did not start."""
        ext = self.directory.extension(number)
        return "always" if ext is not None and records_always(ext) else "star1"

    def start(self) -> None:
        """The periodic retention sweep (none when ``sweep_interval`` is 0): a task of
        its own, not one of the link's short-lived background ones (those are awaited
        to settle; this one never ends until `close`)."""
        if self.settings.sweep_interval > 0 and self._sweeping is None:
            self._sweeping = asyncio.create_task(self._sweep_forever())

    async def close(self) -> None:
        if self._sweeping is not None:
            self._sweeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeping
            self._sweeping = None

    async def sweep(self) -> SweepReport:
        """One retention sweep now (off the loop), counted."""
        report = await asyncio.to_thread(self.sweeper.sweep, self._clock())
        for row in report.swept:
            self.swept[row.state] = self.swept.get(row.state, 0) + 1
        self.swept_bytes += report.freed
        return report

    async def _sweep_forever(self) -> None:
        while True:
            try:
                # With replicas, one sweeps (the others skip their rounds until it dies).
                if not await self.coordination.lead("retention sweep"):
                    await asyncio.sleep(self.settings.sweep_interval)
                    continue
                report = await self.sweep()
                if report.swept or report.kept:
                    log.info("retention: %d recordings deleted (%d bytes), %d kept",
                             len(report.swept), report.freed, len(report.kept))
            except Exception:  # a locked database: try again next time
                log.exception("retention sweep failed")
            await asyncio.sleep(self.settings.sweep_interval)
    def _reconciled_by(self, number: str) -> str:
        """Who started a file of our naming that no event showed (the bridge was away):
        by the extension's policy now, the dialplan's "always" or *1; else the PBX."""
        ext = self.directory.extension(number)
        if ext is not None and records_always(ext):
            return "always"
        return "star1" if ext is not None and on_demand(ext) else "pbx"

    def _owner_of(self, number: str) -> Owner | None:
        ext = self.directory.extension(number)
        org = self.directory.organization_of_extension(ext) if ext is not None else None
        return Owner(org.id, ext.owner) if ext is not None and org is not None else None

    def _live(self) -> Live:
        return live_files(self.nodes, self._unwritten.values())

    # ------------------------------------------------------------------ the API's
    async def get(self, recording_id: str) -> RecordingRow | None:
        return await asyncio.to_thread(self.store.get, recording_id)

    async def find(self, query: RecordingQuery) -> list[RecordingRow]:
        return await asyncio.to_thread(self.store.find, query)

    async def page(self, query: RecordingQuery, start: int, count: int
                   ) -> tuple[int, list[RecordingRow]]:
        return await asyncio.to_thread(self.store.page, query, start, count)

    async def delete(self, row: RecordingRow) -> None:
        """The file (if any), then the row; a file this host may not remove keeps its row
        (RecordingUndeletable) rather than leaving a file nothing lists."""
        path = self.path_of(row)
        if path is not None:
            try:
                await asyncio.to_thread(path.unlink, missing_ok=True)
            except OSError as exc:
                log.warning("recording %s: cannot delete %s: %s", row.id, path, exc.strerror)
                raise RecordingUndeletable(
                    "the bridge may not delete this recording's file: its user needs "
                    "write permission on the recordings folder (README, 'Recordings "
                    "folder permissions')") from None
        await asyncio.to_thread(self.store.delete, row.id)

    def path_of(self, row: RecordingRow) -> Path | None:
        return Path(row.host_path) if row.host_path else None

    # ------------------------------------------------------------------ internals
    def _place(self, row: RecordingRow) -> None:
        ext = self.directory.extension(row.extension)
        if ext is not None:
            row.owner = ext.owner
            org = self.directory.organization_of_extension(ext)
            row.organization = org.id if org is not None else None
        if row.file is not None:
            path = host_path(row.file, self.settings_of(row.node))
            row.host_path = str(path) if path is not None else None

    def _changed(self, rows: list[RecordingRow], link: PbxLink) -> None:
        """``link``: the node's whose events changed the rows (its tasks run the work)."""
        for row in rows:
            self._persist(row, link)
            if row.stopped is not None and row.state == "recording":
                if row.id not in self._finishing:
                    self._finishing.add(row.id)
                    link.spawn(self._finish(row, link))

    def _persist(self, row: RecordingRow, link: PbxLink) -> int:
        """Queue the row's write; the key it is queued under (in ``_unwritten``)."""
        # A copy as it is now; writes run one at a time in the order of the events.
        copy = dataclasses.replace(row, paused=[list(p) for p in row.paused])
        key = next(self._write_ids)
        self._unwritten[key] = copy
        self._writer.due(link.spawn)
        self._tell_saved([copy])
        return key

    def _tell_saved(self, rows: list[RecordingRow]) -> None:
        for row in rows:
            for listener in self.on_saved:
                listener(row)

    async def _write_batch(self) -> None:
        # Every row queued by now, in order, in one transaction: a start's or a stop's
        # rows and those of other calls' events that came meanwhile share one commit
        # (fewer worker-thread hops and commits next to the requests; issue 15).
        keys = list(self._unwritten)
        if not keys:
            return
        rows = [self._unwritten[k] for k in keys]
        try:
            await asyncio.to_thread(self.store.save_all, rows)
        except Exception:  # a broken database must not stop event handling
            log.exception("recordings %s: could not save", ", ".join(r.id for r in rows))
        finally:
            for k in keys:
                del self._unwritten[k]

    async def drained(self) -> None:
        """Until every row queued so far is written (a graceful stop, tests)."""
        while self._unwritten:
            await asyncio.sleep(0.01)

    async def _finish(self, row: RecordingRow, link: PbxLink) -> None:
        """The stopped row, finished once: with replicas, under the row's lock, by the
        first to get there; the others find it finished (a replica that died meanwhile
        left it running: the next one finishes it)."""
        try:
            path = self.path_of(row)
            if path is not None:
                await self._settled(path)  # no lock or slot: only its size is watched
            async with self._finish_slots, self.coordination.hold(ROW, row.id):
                if not await self._finished_elsewhere(row):
                    await self._finish_now(row, link, path)
        except StorageError as exc:  # the next start-up takes the row up again
            log.warning("recording %s: not finished: %s", row.id, exc)
        finally:
            self._finishing.discard(row.id)

    async def _finished_elsewhere(self, row: RecordingRow) -> bool:
        if not self.coordination.shared:
            return False
        async with self._writer.lock:  # this replica's own writes of the row come first
            stored = await asyncio.to_thread(self.store.get, row.id)
        return stored is not None and stored.state in FINISHED

    async def _finish_now(self, row: RecordingRow, link: PbxLink, path: Path | None) -> None:
        if path is None:
            # Never served: the file is not known, or lies outside the recordings
            # folders (host_path), e.g. a dialplan MixMonitor writing to /tmp.
            unknown = row.file is None
            row.state = "failed"
            row.reason = "file unknown" if unknown else "outside the recordings folders"
        else:
            finish(row, await asyncio.to_thread(wavfile.inspect, path))
        log.info("recording %s: %s%s", row.id, row.state,
                 f" ({row.reason})" if row.reason else "")
        key = self._persist(row, link)
        if self.coordination.shared:
            # Stored before the row's lock goes, so the next replica finds it finished.
            await self._writer.until(lambda: key not in self._unwritten)

    async def _settled(self, path: Path) -> None:
        """Until the file's size stops changing (MixMonitor may still flush after its
        channel went away); a file that does not exist settles at once."""
        last = await asyncio.to_thread(_size, path)
        for _ in range(_SETTLE_CHECKS):
            await asyncio.sleep(self.settings.settle_interval)
            size = await asyncio.to_thread(_size, path)
            if size == last:
                return
            last = size


class NodeCatalog(Feature):
    """One PBX node's side of the catalog, plugged into that node's link: the state
    machine on its tracker (rows named after the node) and the reconciler of its
    folders, which changes the node's own rows only."""

    def __init__(self, owner: RecordingsCatalog, node: CatalogNode, *, first: bool) -> None:
        self.name = node.name
        self.link = node.link
        self.first = first
        self._owner = owner
        self._folders = node.folders
        self._cached: tuple[RecordingsSettings, RecordingsSettings] | None = None
        self.catalog = Catalog(
            node.link.tracker, origin_of=node.origin_of, place=owner._place,
            dialplan_trigger=owner._dialplan_trigger, node=node.name,
        )
        self.reconciler = Reconciler(
            owner.store, settings=self.settings, live=owner._live, owner_of=owner._owner_of,
            started_by=owner._reconciled_by, write_lock=owner._writer.lock,
            saved=owner._tell_saved, node=node.name, owns=self.owns,
        )
        # The first node's role keeps its name (replicas of an older bridge agree on it).
        self._role = "recordings reconcile" + ("" if first else f" {node.name}")
        node.link.add_feature(self)

    def owns(self, named: str | None) -> bool:
        """Whether a row naming the node ``named`` is this node's."""
        return on_node(named, self.name, first=self.first)

    def settings(self) -> RecordingsSettings:
        """``[recordings]`` with this node's folders (followed if it is replaced)."""
        base = self._owner.settings
        if self._cached is None or self._cached[0] is not base:
            self._cached = (base, self._folders.applied_to(base))
        return self._cached[1]

    def on_event(self, ev: Event) -> None:
        self._owner._changed(self.catalog.on_event(ev), self.link)

    def on_snapshot(self, rows: list[Event]) -> None:
        self._owner._changed(self.catalog.on_snapshot(self._owner._clock()), self.link)
        self.link.spawn(self._reconcile())

    async def _reconcile(self) -> None:
        """A pass with the node's folders; with replicas, by the one that leads it."""
        if await self._owner.coordination.lead(self._role):
            await self.reconciler.run()
