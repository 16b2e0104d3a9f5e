"""Recording "always": the repair of views the dialplan did not record.

An extension whose phone terminal setup says call recording on, triggered ``always``,
has every call recorded without anyone asking. The dialplan does it first: the bridge
writes the policy to AstDB (recording/astdb.py, trigger field ``always``) and Dial's
``U(pbx-bridge-rec)`` starts MixMonitor on the called extension's channel at answer,
bridge running or not. The bridge repairs what that misses (the calling side, which no
Dial hook reaches at answer; a PBX without the ``U()`` option; a bridge started
mid-call): a view whose extension has an answered, concrete channel that records
nothing is started (a called channel only ``recordings.always_grace`` seconds after the
bridge first saw it so; the call's originating channel at once, no hook reaches it)
through the same path as StartRecording (same naming, lock and PBX_REC reservation).
The grace lets the dialplan's ``MixMonitorStart`` arrive first, so the bridge never
starts a second MixMonitor next to the dialplan's.

A channel is tried once, so a refused start is not retried in a loop; a new channel of
the view (a transfer) is tried again, and a refused or timed-out start is retried after
``recordings.always_retry_first`` seconds, doubling up to ``always_retry_cap``, for as
long as the channel lives. The tried set is cleared after a reconnect, so a bridge
restart or a lost AMI link records what it missed.

`due` and `touched_call` are pure; `AlwaysRecorder` is their shell.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Container, Mapping
from dataclasses import dataclass

from pbx_bridge.calls.tracker import Call, Channel, Tracker
from pbx_bridge.core.link import PbxLink
from pbx_bridge.directory.models import Extension
from pbx_bridge.directory.store import Directory
from pbx_bridge.errors import PbxBridgeError
from pbx_bridge.pbx.ami import AmiError
from pbx_bridge.recording.rules import records_always
from pbx_bridge.recording.service import RecordingService

__all__ = ["AlwaysRecorder", "AlwaysTiming", "due", "records_always", "touched_call"]

log = logging.getLogger("pbx_bridge.recording")


def touched_call(tracker: Tracker, ev: Mapping[str, str]) -> Call | None:
    """The live call an AMI event belongs to (after the tracker has applied it)."""
    linkedid = ev.get("Linkedid") or ev.get("DestLinkedid")
    return tracker.calls.get(linkedid) if linkedid else None


def due(
    tracker: Tracker, call: Call, always: Container[str], tried: Collection[str]
) -> list[tuple[str, Channel]]:
    """(extension, channel) pairs of the call to start recording now."""
    out: list[tuple[str, Channel]] = []
    for ext in call.view_ids:
        if ext not in always:
            continue
        if any(c.recording is not None for c in call.channels_of(ext)):
            continue
        ch = tracker.recording_channel(call, ext)
        if ch is not None and ch.uniqueid not in tried and not ch.rearming:
            out.append((ext, ch))
    return out


@dataclass(frozen=True, slots=True)
class AlwaysTiming:
    """[recordings] always_retry_first, always_retry_cap and always_grace, in seconds."""

    retry_first: float
    retry_cap: float
    grace: float


class AlwaysRecorder:
    def __init__(
        self,
        link: PbxLink,
        directory: Directory,
        recordings: RecordingService,
        timing: AlwaysTiming,
    ) -> None:
        self._link = link
        self._directory = directory
        self._recordings = recordings
        self._timing = timing
        self._always = self._always_recorded()
        self._tried: set[str] = set()  # uniqueids an automatic start was tried on
        self._failures: dict[str, int] = {}  # uniqueid -> failed automatic starts
        self._due_since: dict[str, float] = {}  # uniqueid -> loop time first seen due

    def _always_recorded(self) -> dict[str, Extension]:
        return {e.number: e for e in self._directory.all_extensions() if records_always(e)}

    def reload(self) -> None:
        """The directory changed: a setup switched to "always" (again) applies to the
        calls already up, whatever was tried on them before; views that record already
        are left alone by `due`."""
        self._always = self._always_recorded()
        self._tried.clear()

    def forget_tried(self) -> None:
        """Whatever was tried before a reconnect may have been lost with the link."""
        self._tried.clear()

    def on_event(self, ev: Mapping[str, str]) -> None:
        if self._always and self._link.ready:
            call = touched_call(self._link.tracker, ev)
            if call is not None:
                self._record(call)

    def sweep(self) -> None:
        self._forget_gone_channels()
        if self._always and self._link.ready:
            for call in list(self._link.tracker.calls.values()):
                self._record(call)

    def _forget_gone_channels(self) -> None:
        live = self._link.tracker.channels.keys()
        self._tried &= live
        self._failures = {k: v for k, v in self._failures.items() if k in live}
        self._due_since = {k: v for k, v in self._due_since.items() if k in live}

    def _record(self, call: Call) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for ext, ch in due(self._link.tracker, call, self._always, self._tried):
            since = self._due_since.get(ch.uniqueid)
            if ch.uniqueid == ch.linkedid:
                pass  # the calling side: no Dial hook reaches it at answer, start now
            elif since is None:
                # First seen due: give the dialplan's own start (Dial U()) time to show.
                self._due_since[ch.uniqueid] = now
                loop.call_later(self._timing.grace, self._recheck, ch.linkedid)
                continue
            elif now - since < self._timing.grace:
                continue  # the recheck already scheduled comes
            self._tried.add(ch.uniqueid)
            self._link.spawn(self._start(call, self._always[ext], ch))

    def _recheck(self, linkedid: str) -> None:
        current = self._link.tracker.calls.get(linkedid)
        if current is not None and self._always and self._link.ready:
            self._record(current)

    async def _start(self, call: Call, ext: Extension, ch: Channel) -> None:
        try:
            await self._recordings.start(
                call, ext, ext.recording.format, started_by="always"
            )
        except (PbxBridgeError, AmiError) as exc:
            failures = self._failures.get(ch.uniqueid, 0) + 1
            self._failures[ch.uniqueid] = failures
            delay = min(self._timing.retry_cap, self._timing.retry_first * 2 ** (failures - 1))
            log.warning(
                "recording always: %s (%s) not started: %s; retrying in %.0f s",
                ext.number, ch.name, exc, delay,
            )
            await asyncio.sleep(delay)
            # Retry while the channel lives: a mandatory recording must not stay lost
            # to one refused or timed-out start (after a timeout, the start asks
            # Asterisk first, so a start that did run is never doubled).
            self._tried.discard(ch.uniqueid)
            current = self._link.tracker.calls.get(ch.linkedid)
            if current is not None and self._link.ready:
                self._record(current)
        else:
            self._failures.pop(ch.uniqueid, None)
            log.info("recording always: started on %s (%s)", ext.number, ch.name)
        # Bounded between sweeps too (they come every pbx.resync_interval).
        if len(self._tried) > 4 * len(self._link.tracker.channels) + 64:
            self._forget_gone_channels()
