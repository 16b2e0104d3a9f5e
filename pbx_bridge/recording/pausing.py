"""PauseRecording and ResumeRecording: a paused recording keeps running, muted.

Asterisk's MixMonitorMute (class `call`) with ``Direction: both`` makes MixMonitor write
silence (exact zeros, checked on Asterisk 22) instead of the call, so the file's timeline
stays the call's: a second of the file is a second of the call. The pause is stamped on
the channel (PBX_RECPAUSED, ``<epoch>``, in manager.conf's channelvars) so a resync after
a bridge restart shows it; the tracker is told once Asterisk answered Success (its
MixMonitorMute event says the same, recording/events.py). Both run under the view's
lock (recording/slots.py), like StartRecording and StopRecording.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from pbx_bridge.calls.tracker import Call, Channel
from pbx_bridge.core.link import PbxLink
from pbx_bridge.errors import PbxRefused, PbxTimeout, PbxUnavailable, ViewState
from pbx_bridge.pbx.ami import AmiNotConnected, AmiTimeout, Message, is_success
from pbx_bridge.recording.service import RecordingService
from pbx_bridge.recording.variables import RECPAUSED_VAR

log = logging.getLogger("pbx_bridge.recording")

# Asterisk's answer to MixMonitorMute on a channel without a MixMonitor.
_NO_MIXMONITOR = "Cannot set mute flag"


class RecordingPauser:
    def __init__(
        self, link: PbxLink, service: RecordingService, *, clock: Callable[[], float]
    ) -> None:
        self.link = link
        self.service = service
        self._clock = clock

    async def pause(self, call: Call, extension: str) -> None:
        """Mute the view's running recording; 409 if it records nothing; idempotent."""
        await self._set(call, extension, paused=True)

    async def resume(self, call: Call, extension: str) -> None:
        """Unmute the view's paused recording; 409 if it records nothing; idempotent."""
        await self._set(call, extension, paused=False)

    async def _set(self, call: Call, extension: str, *, paused: bool) -> None:
        self.link.require_ready()
        async with self.service.guard.hold(self.service.slot(call, extension), call, extension):
            if call.linkedid not in self.link.tracker.calls:
                raise ViewState("the call has ended")
            recording = [c for c in call.channels_of(extension) if c.recording is not None]
            if not recording:
                raise ViewState("the view is not recording")
            for ch in recording:
                if (ch.rec_paused is not None) != paused:  # else: as asked already
                    await self._mute(ch, paused)

    async def _mute(self, ch: Channel, paused: bool) -> None:
        ami = self.link.ami
        stamp = f"{self._clock():.3f}" if paused else ""
        mute = ami.send_action(
            "MixMonitorMute",
            {"Channel": ch.name, "Direction": "both", "State": "1" if paused else "0"},
        )
        setvar = ami.send_action(
            "Setvar", {"Channel": ch.name, "Variable": RECPAUSED_VAR, "Value": stamp}
        )
        try:
            # Pipelined, in the order Asterisk runs them: a pause stamps the channel
            # before muting (so the MixMonitorMute event carries the stamp); a resume
            # unmutes before clearing it (the stamp never says less than the file holds).
            if paused:
                _, resp = await asyncio.gather(setvar, mute)
            else:
                resp, _ = await asyncio.gather(mute, setvar)
        except AmiNotConnected as exc:
            raise PbxUnavailable(str(exc)) from exc
        except AmiTimeout as exc:
            # Asterisk may still run both; a retry sends them again, which is harmless.
            raise PbxTimeout(str(exc)) from exc
        self._confirm(ch, paused, stamp, resp)

    def _confirm(self, ch: Channel, paused: bool, stamp: str, resp: Message) -> None:
        tracker = self.link.tracker
        if is_success(resp):
            if paused:
                tracker.mark_paused(ch.uniqueid, float(stamp))
            else:
                tracker.clear_paused(ch.uniqueid)
            return
        if paused:
            self.link.spawn(self.link.setvar(ch.name, RECPAUSED_VAR, ""))
        if ch.uniqueid not in tracker.channels:
            raise ViewState("the view hung up")
        message = resp.get("Message", "MixMonitorMute failed")
        if message == _NO_MIXMONITOR:
            # The recording ended under us (its MixMonitorStop is on the way): nothing to
            # pause or resume, as Asterisk says.
            tracker.clear_recording(ch.uniqueid)
            raise ViewState("the view is not recording")
        log.warning("MixMonitorMute on %s did not %s: %s",
                    ch.name, "pause" if paused else "resume", message)
        raise PbxRefused(message)
