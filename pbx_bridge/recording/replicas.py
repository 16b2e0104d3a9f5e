"""One view's start, stop, pause and resume across bridge replicas (docs/design.md,
"Replicas").

Each replica follows Asterisk through its own AMI link, so its tracker may not have seen
yet what another replica just did to a view: the other's Setvar PBX_REC and MixMonitor
were answered, their events are on the way. In-process, the view's slot lock orders
every change of a view (recording/slots.py); across replicas, a PostgreSQL advisory lock
keyed by the view does (storage/coordination.py), and once it is held the view's
channels are read from Asterisk itself (Getvar PBX_REC and PBX_RECPAUSED, pipelined: one
round trip, with the channel's last MixMonitor file), which the other replica finished
writing before it let the lock go. What
Asterisk says then wins over this tracker: a stamped recording that runs (its
MixMonitor is asked for, as after a restart) is marked, a stamp another replica cleared
ends the tracker's belief, and so does a pause. So a loser of the start race answers as
StartRecording's idempotent path (200, already recording), and a stop through one replica
of a start through another stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import PurePosixPath

from pbx_bridge.calls.tracker import Call, Channel
from pbx_bridge.core.link import PbxLink
from pbx_bridge.errors import PbxTimeout, PbxUnavailable
from pbx_bridge.pbx.ami import AmiNotConnected, AmiTimeout, is_success
from pbx_bridge.recording.probe import MixMonitorProbe
from pbx_bridge.recording.slots import ViewSlot
from pbx_bridge.recording.variables import REC_VAR, RECPAUSED_VAR, parse_rec, paused_since
from pbx_bridge.storage.coordination import VIEW, Coordination
from pbx_bridge.storage.url import StorageError

__all__ = ["ViewGuard"]

# Set by MixMonitor on its channel when it starts, and left there after it stops.
_LAST_FILE = "MIXMONITOR_FILENAME"


class ViewGuard:
    """The view's lock in this process and, with replicas, across them."""

    def __init__(self, link: PbxLink, probe: MixMonitorProbe, coordination: Coordination) -> None:
        self._link = link
        self._probe = probe
        self.coordination = coordination

    @contextlib.asynccontextmanager
    async def hold(
        self, slot: ViewSlot, call: Call, extension: str
    ) -> AsyncIterator[dict[str, str]]:
        """Every change of the view runs in this block; with replicas, the tracker has
        caught up with Asterisk on the view's channels when it begins. Yields the last
        file each channel's MixMonitor wrote (Uniqueid -> file name; empty without
        replicas, where the slot remembers this process's starts): a start in the same
        second as another replica's must not reuse, and so truncate, its file."""
        async with slot.lock:
            if not self.coordination.shared:
                yield {}
                return
            try:
                async with self.coordination.hold(VIEW, call.linkedid, extension):
                    yield await self.catch_up(call.channels_of(extension))
            except StorageError as exc:
                raise PbxUnavailable(f"the replicas' database: {exc}") from exc

    async def catch_up(self, channels: list[Channel]) -> dict[str, str]:
        """Asterisk's PBX_REC / PBX_RECPAUSED of these channels, applied to the tracker;
        their MIXMONITOR_FILENAME (the last file of each), by Uniqueid."""
        ami = self._link.ami
        names = (REC_VAR, RECPAUSED_VAR, _LAST_FILE)
        try:
            answers = await asyncio.gather(*(
                ami.send_action("Getvar", {"Channel": ch.name, "Variable": var})
                for ch in channels for var in names
            ))
            last: dict[str, str] = {}
            for i, ch in enumerate(channels):
                rec, paused, file = answers[3 * i:3 * i + 3]
                if is_success(rec) and is_success(paused):
                    await self._apply(ch, rec.get("Value", ""), paused.get("Value", ""))
                if is_success(file) and file.get("Value"):
                    last[ch.uniqueid] = PurePosixPath(file["Value"]).name
            return last
        except AmiNotConnected as exc:
            raise PbxUnavailable(str(exc)) from exc
        except AmiTimeout as exc:
            raise PbxTimeout(str(exc)) from exc

    async def _apply(self, ch: Channel, rec: str, paused: str) -> None:
        tracker = self._link.tracker
        started, file = parse_rec(rec)
        if started is None:
            # A stamp another replica cleared (its stop); a run the PBX started without
            # a stamp (no file known) is not ours to end.
            if ch.recording is not None and ch.rec_file is not None:
                tracker.clear_recording(ch.uniqueid)
            return
        if ch.recording != started:
            # Another replica's start (or an old stamp nothing runs behind): believed
            # only if its MixMonitor exists, as on a resync.
            if not await self._probe.runs(ch.name):
                return
            tracker.mark_recording(ch.uniqueid, started, file)
        since = paused_since(paused, started)
        if since is None:
            tracker.clear_paused(ch.uniqueid)
        elif ch.rec_paused is None:
            tracker.mark_paused(ch.uniqueid, since)
