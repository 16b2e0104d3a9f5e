"""The recording feature, plugged into the PBX link (core/feature.py's hooks).

It keeps the tracker's recording marks true (recording/events.py), checks PBX_REC
stamps against the MixMonitor Asterisk runs on resync (recording/probe.py), writes who
may record with *1 to AstDB (recording/astdb.py), logs the *1 subroutine's reports
(recording/star1.py), records "always" extensions by itself (recording/always.py),
re-arms a recording whose channel got a new peer (recording/rearm.py), and
serves StartRecording / StopRecording (recording/service.py) and PauseRecording /
ResumeRecording (recording/pausing.py) under the rules of recording/rules.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

from pbx_bridge.calls.tracker import Call
from pbx_bridge.config import Settings
from pbx_bridge.core.feature import Event, Feature
from pbx_bridge.core.link import PbxLink
from pbx_bridge.directory.models import Extension
from pbx_bridge.directory.store import Directory
from pbx_bridge.recording import astdb, events, rules, star1
from pbx_bridge.recording.always import AlwaysRecorder, AlwaysTiming
from pbx_bridge.recording.pausing import RecordingPauser
from pbx_bridge.recording.rearm import Rearmer
from pbx_bridge.recording.service import RecordingCounts, RecordingService
from pbx_bridge.recording.slots import ViewSlots
from pbx_bridge.recording.variables import REC_HEADER
from pbx_bridge.storage.coordination import Coordination

__all__ = ["RecordingFeature"]


class RecordingFeature(Feature):
    def __init__(
        self,
        link: PbxLink,
        directory: Directory,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        coordination: Coordination | None = None,
        extensions: Callable[[], Mapping[str, Extension]] | None = None,
    ) -> None:
        """``coordination``: the replicas' locks in PostgreSQL (None: one process).
        ``extensions``: device -> extension of the extensions on this link's node, whose
        policy its AstDB gets (None: every extension of the directory)."""
        self.link = link
        self.directory = directory
        self._extensions = extensions
        rec = settings.recordings
        self.default_format = rec.default_format
        self._base_dir = rec.directory
        self.service = RecordingService(
            link, directory, base_dir=rec.directory,
            stop_wait=settings.ami.action_timeout, clock=clock, coordination=coordination,
        )
        self.pauser = RecordingPauser(link, self.service, clock=clock)
        self.always = AlwaysRecorder(
            link, directory, self.service,
            AlwaysTiming(rec.always_retry_first, rec.always_retry_cap, rec.always_grace),
        )
        # Re-arms a recorded channel's MixMonitor when it gets a new peer (rearm.py).
        self.rearmer = Rearmer(link, self.service, stop_wait=settings.ami.action_timeout)
        self.counts: RecordingCounts = self.service.counts
        self.views: ViewSlots = self.service.views  # the per-view slots (bounded)
        # Channels running a MixMonitor the PBX started without a stamp (events.py).
        self.unstamped: set[str] = set()
        # Who may record, kept in AstDB by difference, never holding readiness (astdb.py).
        self.policy = astdb.PolicySync(link.ami, self.expected_policy, link.spawn)
        link.add_feature(self)

    def expected_policy(self) -> dict[str, str]:
        """The AstDB family the directory wants now (astdb.py)."""
        return astdb.expected_policy(self.directory, self._base_dir, self._node_extensions())

    # ------------------------------------------------------------------ the API's
    async def start(
        self, call: Call, ext: Extension, fmt: str | None = None, *, app_id: str | None = None
    ) -> None:
        """StartRecording: allowed by the rules, then started (idempotent)."""
        rules.check_start(ext)
        await self.service.start(call, ext, fmt or self.default_format, app_id=app_id)

    def origin_of(self, file: str) -> tuple[str, str | None] | None:
        """Who started the recording into ``file`` through this bridge, if it did. Asked
        once per run, by the catalog: the answer is forgotten once given."""
        return self.service.origins.pop(file, None)

    async def stop(self, call: Call, ext: Extension) -> None:
        """StopRecording: allowed by the rules, then stopped (a no-op if not recording)."""
        rules.check_stop(ext)
        await self.service.stop(call, ext)

    async def pause(self, call: Call, ext: Extension) -> None:
        """PauseRecording: StartRecording's gate (and never on "always"), then the view's
        recording muted (idempotent; 409 if it records nothing)."""
        rules.check_pause(ext)
        await self.pauser.pause(call, ext.number)

    async def resume(self, call: Call, ext: Extension) -> None:
        """ResumeRecording: as PauseRecording, the other way."""
        rules.check_pause(ext)
        await self.pauser.resume(call, ext.number)

    # ------------------------------------------------------------------ link hooks
    async def review_snapshot(self, rows: list[Event], *, reconnected: bool) -> list[Event]:
        # A PBX_REC stamp alone is never believed: it is checked against the MixMonitor
        # Asterisk runs, unless the tracker already saw that very recording confirmed
        # (MixMonitorStart, or the MixMonitor action's success) and nothing can have been
        # missed since (no reconnect, the view's start not in doubt).
        self.service.probe.keep_unchecked({row.get("Uniqueid", "") for row in rows})
        doubtful = [
            i for i, row in enumerate(rows)
            if row.get(REC_HEADER) and (reconnected or not self._confirmed(row))
        ]
        if not doubtful:
            return rows
        # Checked concurrently: one round trip for all, not one per channel.
        checked = await asyncio.gather(*(self.service.probe.checked_row(rows[i]) for i in doubtful))
        rows = list(rows)
        for i, row in zip(doubtful, checked, strict=True):
            rows[i] = row
        return rows

    def _confirmed(self, row: Event) -> bool:
        ext = self.link.tracker.extension_of(row.get("Channel", ""))
        if ext is not None and self.service.in_doubt(row.get("Linkedid", ""), ext):
            return False
        return events.recording_confirmed(self.link.tracker, row)

    def on_snapshot(self, rows: list[Event]) -> None:
        events.apply_snapshot(self.link.tracker, rows, self.unstamped)

    def on_event(self, ev: Event) -> None:
        events.apply_event(self.link.tracker, ev, self.unstamped)
        if star1.is_star1_report(ev) and star1.log_star1_report(
            ev, self.link.tracker.extension_of
        ):
            self.service.counts.failed += 1
        self.always.on_event(ev)
        self.rearmer.on_event(ev)

    def _node_extensions(self) -> Mapping[str, Extension] | None:
        return self._extensions() if self._extensions is not None else None

    def on_ready(self, *, reconnected: bool) -> None:
        if reconnected:
            # In the background: until it is done, *1 reads what AstDB already holds.
            self.policy.reconnected()
            self.policy.request()
            self.always.forget_tried()
        self.always.sweep()

    def on_directory(self) -> None:
        self.always.reload()
        if self.link.ami.connected:
            self.policy.request()
            self.always.sweep()
