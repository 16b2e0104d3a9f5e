"""Re-arming a recording whose channel got a new peer (a transfer), so it keeps both sides.

Asterisk 22 (asterisk/asterisk#507, #851): once a channel that records is moved to
another bridge or gets a new peer (blind and attended transfers, the consultation of an
attended one), its MixMonitor often stops receiving the audio the channel is *sent*
(its write direction): the file holds its own side only. The fault belongs to the
channel's list of audio hooks, not to the MixMonitor: a second MixMonitor started next
to the first records one side too, while stopping every MixMonitor (Asterisk then drops
the emptied list) and starting again records both (checked on the sandbox's Asterisk:
docs/design.md "Transfers").

So when a recorded channel's bridge gets a member it was not bridged with before (and it
had had another peer), the bridge stops its MixMonitor and starts it again with the
``a`` option onto the very same file: one row, one file, with the few hundred
milliseconds of the re-arm missing. Only runs the bridge knows the file of (a PBX_REC
stamp: the API, "always", *1) are re-armed, and not a paused one (its mute would be
lost). `new_peers` is pure; `Rearmer` is its shell.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from pbx_bridge.core.link import PbxLink
from pbx_bridge.pbx.ami import AmiError, is_success
from pbx_bridge.recording.service import RecordingService
from pbx_bridge.recording.variables import MIXMONITOR_OPTIONS, REC_HEADER, REC_VAR, parse_rec

__all__ = ["Peers", "Rearmer", "new_peers"]

log = logging.getLogger("pbx_bridge.recording")
Event = Mapping[str, str]
# After MixMonitorStop the emptied hook list is dropped by the channel's next audio frame
# (20 ms); a start before that would join the old list again. Ten frames of margin.
_SETTLE = 0.2
REARM_OPTIONS = "a" + MIXMONITOR_OPTIONS  # append to the run's own file


class Peers:
    """Who is in which bridge, and whom each channel has been bridged with, from
    BridgeEnter / BridgeLeave / Hangup events."""

    def __init__(self) -> None:
        self.bridges: dict[str, set[str]] = {}  # BridgeUniqueid -> Uniqueids
        self.seen: dict[str, set[str]] = {}  # Uniqueid -> every peer it has had

    def on_event(self, ev: Event) -> list[str]:
        """The channels that got a new peer, after having had another (to re-arm)."""
        name, uid, bridge = ev.get("Event"), ev.get("Uniqueid", ""), ev.get("BridgeUniqueid", "")
        if name == "BridgeEnter" and uid and bridge:
            members = self.bridges.setdefault(bridge, set())
            members.add(uid)
            return new_peers(members, self.seen)
        if name == "BridgeLeave" and bridge in self.bridges:
            self.bridges[bridge].discard(uid)
            if not self.bridges[bridge]:
                del self.bridges[bridge]
        elif name == "Hangup":
            self.seen.pop(uid, None)
        return []


def new_peers(members: set[str], seen: dict[str, set[str]]) -> list[str]:
    """Record that ``members`` share a bridge; return those among them that had a peer
    before and now have one they never had (sorted, for a stable order)."""
    changed = []
    for uid in sorted(members):
        before = seen.setdefault(uid, set())
        others = members - {uid}
        if before and not others <= before:
            changed.append(uid)
        before |= others
    return changed


class Rearmer:
    def __init__(self, link: PbxLink, service: RecordingService, *, stop_wait: float) -> None:
        """``stop_wait``: how long to wait for the MixMonitorStop of the stop."""
        self.link = link
        self.service = service
        self._stop_wait = stop_wait
        self.peers = Peers()
        self.count = 0  # re-arms Asterisk confirmed
        self._stamps: dict[str, str] = {}  # Uniqueid -> file its PBX_REC stamp names

    def on_event(self, ev: Event) -> None:
        # The dialplan's *1 and "always" stamp PBX_REC only after their MixMonitor ran,
        # so a later event of the channel (channelvars) is the first to name the file.
        _, stamp = parse_rec(ev.get(REC_HEADER))
        if stamp and ev.get("Uniqueid"):
            self._stamps[ev["Uniqueid"]] = stamp
        if ev.get("Event") == "Hangup":
            self._stamps.pop(ev.get("Uniqueid", ""), None)
        for uid in self.peers.on_event(ev):
            ch = self.link.tracker.channels.get(uid)
            if ch is not None and ch.recording is not None:
                self.link.spawn(self.rearm(uid))

    async def rearm(self, uid: str) -> None:
        tracker = self.link.tracker
        ch = tracker.channels.get(uid)
        call = tracker.calls.get(ch.linkedid) if ch is not None else None
        if ch is None or call is None or ch.extension is None:
            return
        async with self.service.guard.hold(
            self.service.slot(call, ch.extension), call, ch.extension
        ):
            # Checked again under the view's lock: a stop or pause may have come first.
            file = ch.rec_file or self._stamps.get(uid)
            if ch.recording is None or not file or ch.rec_paused is not None or ch.rearming:
                return
            ch.rearming = True
            try:
                await self._restart(uid, ch.name, file)
            except AmiError as exc:
                log.warning("re-arming the recording on %s failed: %s", ch.name, exc)
            finally:
                ch.rearming = False

    async def _restart(self, uid: str, name: str, file: str) -> None:
        tracker = self.link.tracker
        ami = self.link.ami
        stop = await ami.send_action("StopMixMonitor", {"Channel": name})
        if not is_success(stop):
            return  # nothing runs there any more: nothing to re-arm
        gone = tracker.channels.get(uid)
        await self.link.wait_until(
            lambda: gone is None or gone.recording is None or uid not in tracker.channels,
            self._stop_wait,
        )
        await asyncio.sleep(_SETTLE)
        if uid not in tracker.channels:
            return
        resp = await ami.send_action(
            "MixMonitor", {"Channel": name, "File": file, "Options": REARM_OPTIONS}
        )
        if is_success(resp) and resp.get("MixMonitorID"):
            self.count += 1
            log.info("re-armed the recording on %s (%s) after a new peer", name, file)
            # Held (view lock, `rearming`) until Asterisk's MixMonitorStart shows it, so
            # neither StartRecording nor "always" starts a second one in between.
            back = tracker.channels.get(uid)
            await self.link.wait_until(
                lambda: back is None or back.recording is not None or uid not in tracker.channels,
                self._stop_wait,
            )
        else:  # the run ended at the stop (the catalog says so); the stamp must go too
            log.warning("re-arming the recording on %s did not start: %s",
                        name, resp.get("Message", "no MixMonitorID"))
            self.link.spawn(self.link.setvar(name, REC_VAR, ""))
