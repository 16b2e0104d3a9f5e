"""What AMI tells about recordings, handed to the tracker. Pure: no I/O.

MixMonitorStart / MixMonitorStop events, and the PBX_REC stamp on CoreShowChannel rows
after a resync, become the tracker's `mark_recording` / `clear_recording`;
MixMonitorMute events and the PBX_RECPAUSED stamp its `mark_paused` / `clear_paused`.
Run after the tracker applied the same event (or the same rows), so the channel is known.

A MixMonitor started outside the bridge (dialplan, automixmon, another AMI client) has
no PBX_REC stamp, and AMI cannot list a channel's MixMonitors without the `command`
class: such a run is known from its MixMonitorStart only. `unstamped` (the caller's set,
by Uniqueid) remembers those runs until their MixMonitorStop or Hangup, so a resync row
without a stamp does not clear them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pbx_bridge.calls.tracker import Tracker
from pbx_bridge.recording.variables import (
    REC_HEADER,
    RECPAUSED_HEADER,
    parse_rec,
    paused_since,
)

Event = Mapping[str, str]
_RECORDING_EVENTS = frozenset({"MixMonitorStart", "MixMonitorStop", "MixMonitorMute"})


def apply_event(tracker: Tracker, ev: Event, unstamped: set[str] | None = None) -> None:
    name = ev.get("Event")
    uid = ev.get("Uniqueid")
    unstamped = set() if unstamped is None else unstamped
    if name == "Hangup" and uid:
        unstamped.discard(uid)
    if name not in _RECORDING_EVENTS or not uid or uid not in tracker.channels:
        return
    if name == "MixMonitorMute":
        _apply_mute(tracker, uid, ev)
        return
    if name == "MixMonitorStop":
        unstamped.discard(uid)
        tracker.clear_recording(uid)
        return
    # Whoever starts a recording through the bridge or its dialplan stamps PBX_REC (the
    # API before MixMonitor, *1 right after); that stamp, not the event's time, is what
    # a resync reads back, so use it here too.
    started, file = parse_rec(ev.get(REC_HEADER))
    if started is None:
        unstamped.add(uid)
    tracker.mark_recording(uid, started or tracker.event_time(ev), file)


def _apply_mute(tracker: Tracker, uid: str, ev: Event) -> None:
    """Asterisk 22 reports every MixMonitorMute (also a repeated one) with ``Direction``
    (read, write, both) and ``State`` (1 muted, 0 not). Paused means both directions
    muted: a half-muted recording still holds one party. Any unmute ends the pause."""
    if ev.get("State") == "0":
        tracker.clear_paused(uid)
        return
    ch = tracker.channels[uid]
    if ev.get("State") != "1" or ev.get("Direction") != "both" or ch.recording is None:
        return
    # PauseRecording stamps PBX_RECPAUSED first; the event carries it (channelvars), and
    # that stamp, not the event's time, is what a resync reads back.
    since = paused_since(ev.get(RECPAUSED_HEADER), ch.recording)
    tracker.mark_paused(uid, since or tracker.event_time(ev))


def apply_snapshot(
    tracker: Tracker, rows: Iterable[Event], unstamped: set[str] | None = None
) -> None:
    """After `Tracker.resync(rows)`: each row that carries PBX_REC says whether (and
    since when) its channel records; a row without the variable changes nothing, and
    an empty stamp does not end a run the PBX started (`unstamped`) on a live channel."""
    unstamped = set() if unstamped is None else unstamped
    unstamped.intersection_update(tracker.channels)
    for row in rows:
        rec = row.get(REC_HEADER)
        uid = row.get("Uniqueid")
        if rec is None or not uid:
            continue
        started, file = parse_rec(rec)
        if started is None:
            if uid not in unstamped:
                tracker.clear_recording(uid)
            continue
        unstamped.discard(uid)
        tracker.mark_recording(uid, started, file)
        if RECPAUSED_HEADER in row:  # (a manager.conf without it says nothing)
            paused = paused_since(row[RECPAUSED_HEADER], started)
            if paused is None:
                tracker.clear_paused(uid)
            else:
                tracker.mark_paused(uid, paused)


def recording_confirmed(tracker: Tracker, row: Event) -> bool:
    """Does the tracker already hold this row's channel as recording, with a readable
    PBX_REC stamp on the row? (Whether the view's start is in doubt is the caller's.)"""
    ch = tracker.channels.get(row.get("Uniqueid", ""))
    if ch is None or ch.recording is None:
        return False
    return parse_rec(row.get(REC_HEADER))[0] is not None
