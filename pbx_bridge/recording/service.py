"""StartRecording and StopRecording against Asterisk, one view at a time.

Every start and stop of a view runs under its slot's lock (recording/slots.py) and, with
replicas, the view's lock in PostgreSQL (recording/replicas.py), so a view has one
MixMonitor at most. A start stamps PBX_REC first, then asks for MixMonitor
(both pipelined: one round trip); Asterisk's answer with a MixMonitorID is the
confirmation, and the tracker is told at once (`Tracker.mark_recording`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

from pbx_bridge.calls.tracker import Call, Channel
from pbx_bridge.core.link import PbxLink
from pbx_bridge.directory.models import Extension
from pbx_bridge.directory.store import Directory
from pbx_bridge.errors import PbxRefused, PbxTimeout, PbxUnavailable, ViewState
from pbx_bridge.pbx.ami import AmiNotConnected, AmiTimeout, Message, is_success
from pbx_bridge.recording import naming
from pbx_bridge.recording.probe import MixMonitorProbe
from pbx_bridge.recording.replicas import ViewGuard
from pbx_bridge.recording.slots import ViewSlot, ViewSlots
from pbx_bridge.recording.variables import (
    MIXMONITOR_OPTIONS,
    REC_VAR,
    RECPAUSED_VAR,
    rec_value,
)
from pbx_bridge.storage.coordination import Coordination

log = logging.getLogger("pbx_bridge.recording")

# Files whose origin is remembered until the catalog reads it at MixMonitorStart (it may
# come before the action's answer): what stays is only starts whose fate is unknown (timed
# out), so a small bound keeps a PBX that never answers from growing the map.
_ORIGINS_KEPT = 1_000


@dataclass
class RecordingCounts:
    started: int = 0
    failed: int = 0
    stopped: int = 0


class RecordingService:
    def __init__(
        self,
        link: PbxLink,
        directory: Directory,
        *,
        base_dir: str,
        stop_wait: float,
        clock: Callable[[], float],
        coordination: Coordination | None = None,
    ) -> None:
        """``base_dir``: recordings.directory; ``stop_wait``: how long a stop waits for
        Asterisk's MixMonitorStop before it answers; ``coordination``: the replicas'
        database locks (none: one process)."""
        self.link = link
        self.directory = directory
        self.counts = RecordingCounts()
        self.views = ViewSlots()
        self.probe = MixMonitorProbe(link)
        self.guard = ViewGuard(link, self.probe, coordination or Coordination(None))
        self._base_dir = base_dir
        self._stop_wait = stop_wait
        self._clock = clock
        # Who asked for each file this bridge started (file -> (startedBy, app id)), for
        # the recordings catalog; bounded, the oldest forgotten first.
        self.origins: OrderedDict[str, tuple[str, str | None]] = OrderedDict()

    def in_doubt(self, linkedid: str, extension: str) -> bool:
        slot = self.views.get((linkedid, extension))
        return slot is not None and slot.in_doubt is not None

    def slot(self, call: Call, extension: str) -> ViewSlot:
        """The view's slot: its lock serialises every start, stop, pause and resume."""
        tracker = self.link.tracker
        return self.views.slot((call.linkedid, extension), tracker.calls, len(tracker.calls))

    # ------------------------------------------------------------------ start
    async def start(
        self, call: Call, ext: Extension, fmt: str, *,
        started_by: str = "api", app_id: str | None = None,
    ) -> None:
        """Start MixMonitor on the view's channel; idempotent, one per view at most.
        ``started_by`` / ``app_id``: who asks (``api`` with its app, ``always``)."""
        self.link.require_ready()
        slot = self.slot(call, ext.number)
        async with self.guard.hold(slot, call, ext.number) as last_files:
            if _recording(call, ext.number):
                return
            ch = self._view_channel(call, ext.number)
            if await self._earlier_start_ran(slot, ch):
                return
            org = self.directory.organization_of_extension(ext)
            if org is None:
                raise ViewState("the extension has no organization")
            now = await slot.free_second(self._clock)
            path = self._path(call, ext, org.id, fmt, now)
            if PurePosixPath(path).name == last_files.get(ch.uniqueid):
                # Another replica's recording of this second: the next second's name.
                now = await slot.free_second(self._clock)
                path = self._path(call, ext, org.id, fmt, now)
            stamp = f"{now:.3f}"
            self._remember_origin(path, started_by, app_id)
            resp = await self._reserve_and_start(slot, ch, stamp, path, now)
            try:
                self._confirm(ch, ext, resp)
            except ViewState:  # refused: no recording into that file
                self.origins.pop(path, None)
                raise
            # Asterisk's Success is the confirmation: MixMonitor runs. Its MixMonitorStart
            # event comes later and carries this very stamp (PBX_REC), so the answer need
            # not wait for it (bench profile: the wait was up to a quarter of a start
            # under load).
            if ch.uniqueid in self.link.tracker.channels and ch.recording is None:
                self.link.tracker.mark_recording(ch.uniqueid, float(stamp), path)

    def _path(self, call: Call, ext: Extension, org_id: int, fmt: str, now: float) -> str:
        return naming.recording_path(
            organization_id=org_id, extension=ext.number, call_id=call.id,
            view_id=call.view_ids[ext.number], fmt=fmt, started=now, base_dir=self._base_dir,
        )

    async def _reserve_and_start(
        self, slot: ViewSlot, ch: Channel, stamp: str, path: str, now: float
    ) -> Message:
        # PBX_REC first: it reserves the view on the channel itself, so a retry after
        # a timed-out MixMonitor (whose fate we cannot know) never starts a second
        # one, and a resync after a bridge restart still sees the recording.
        ami = self.link.ami
        try:
            setvar = ami.send_action(
                "Setvar", {"Channel": ch.name, "Variable": REC_VAR, "Value": rec_value(stamp, path)}
            )
            mixmon = ami.send_action(
                "MixMonitor", {"Channel": ch.name, "File": path, "Options": MIXMONITOR_OPTIONS}
            )
            _, resp = await asyncio.gather(setvar, mixmon)
        except AmiNotConnected as exc:
            self.counts.failed += 1
            raise PbxUnavailable(str(exc)) from exc
        except AmiTimeout as exc:
            self.counts.failed += 1
            slot.in_doubt = now
            raise PbxTimeout(str(exc)) from exc
        return resp

    def _confirm(self, ch: Channel, ext: Extension, resp: Message) -> None:
        # Asterisk answers Success even when MixMonitor could not set itself up on
        # the channel; only the MixMonitorID its i() option returns shows it runs.
        if is_success(resp) and resp.get("MixMonitorID"):
            self.counts.started += 1
            return
        self.counts.failed += 1
        self.link.spawn(self.link.setvar(ch.name, REC_VAR, ""))
        if ch.uniqueid not in self.link.tracker.channels:
            raise ViewState("the view hung up")
        log.warning("MixMonitor on %s (extension %s) did not start: %s",
                    ch.name, ext.number, resp.get("Message", "no MixMonitorID"))
        raise PbxRefused(resp.get("Message", "MixMonitor failed"))

    def _view_channel(self, call: Call, extension: str) -> Channel:
        if call.linkedid not in self.link.tracker.calls:
            raise ViewState("the call has ended")
        ch = self.link.tracker.recording_channel(call, extension)
        if ch is None:
            if not call.channels_of(extension):
                raise ViewState("the view has hung up")
            raise ViewState("the view is not answered")
        return ch

    async def _earlier_start_ran(self, slot: ViewSlot, ch: Channel) -> bool:
        """After a StartRecording timed out, its Setvar/MixMonitor actions may still be
        queued in a slow Asterisk, which runs them in order: starting again blindly would
        queue a second MixMonitor behind the first. So ask Asterisk first (answered only
        after whatever is queued before): recording already -> nothing to start; no
        answer -> 504 again, and nothing new queued. The same on a channel whose PBX_REC
        stamp a resync could not check (`MixMonitorProbe.unchecked`)."""
        stamp = self.probe.unchecked.get(ch.uniqueid)
        if slot.in_doubt is None and stamp is None:
            return False
        try:
            # Unanswerable (None) counts as not running: a PBX_REC stamp alone is no proof.
            running = bool(await self.probe.runs(ch.name))
        except AmiNotConnected as exc:
            raise PbxUnavailable(str(exc)) from exc
        except AmiTimeout as exc:
            raise PbxTimeout(str(exc)) from exc
        started, slot.in_doubt = slot.in_doubt, None
        self.probe.unchecked.pop(ch.uniqueid, None)
        if running and ch.recording is None:
            # What the channel's own stamp says, when a resync read one; else what
            # this bridge's own timed-out start stamped.
            if stamp is not None:
                self.link.tracker.mark_recording(ch.uniqueid, *stamp)
            elif started is not None:
                self.link.tracker.mark_recording(ch.uniqueid, started, ch.rec_file)
        return running

    def _remember_origin(self, path: str, started_by: str, app_id: str | None) -> None:
        self.origins[path] = (started_by, app_id)
        while len(self.origins) > _ORIGINS_KEPT:
            self.origins.popitem(last=False)

    # ------------------------------------------------------------------ stop
    async def stop(self, call: Call, ext: Extension) -> None:
        self.link.require_ready()
        async with self.guard.hold(self.slot(call, ext.number), call, ext.number):
            for ch in [c for c in call.channels_of(ext.number) if c.recording is not None]:
                await self._stop_channel(ch)

    async def _stop_channel(self, ch: Channel) -> None:
        ami = self.link.ami
        tracker = self.link.tracker
        clear = [REC_VAR] if ch.rec_paused is None else [REC_VAR, RECPAUSED_VAR]
        try:
            # Pipelined, like the start: Asterisk runs one connection's actions in the
            # order they arrive, so this is the same sequence in one round trip.
            resp, *_ = await asyncio.gather(
                ami.send_action("StopMixMonitor", {"Channel": ch.name}),
                *(ami.send_action("Setvar", {"Channel": ch.name, "Variable": var, "Value": ""})
                  for var in clear),
            )
        except AmiNotConnected as exc:
            raise PbxUnavailable(str(exc)) from exc
        except AmiTimeout as exc:
            raise PbxTimeout(str(exc)) from exc
        if not is_success(resp) and ch.uniqueid in tracker.channels:
            # Nothing to stop on that channel: the tracker was behind. Trust Asterisk.
            log.info("StopMixMonitor on %s: %s", ch.name, resp.get("Message"))
        self.counts.stopped += 1
        await self.link.wait_until(
            lambda: ch.recording is None or ch.uniqueid not in tracker.channels,
            self._stop_wait,
        )
        tracker.clear_recording(ch.uniqueid)


def _recording(call: Call, extension: str) -> bool:
    return any(c.recording is not None for c in call.channels_of(extension))
