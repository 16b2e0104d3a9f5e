"""bench/call_memory.py measures N live calls: its copies of the captured calls must be
N distinct calls (a shared channel name, bridge id or recording file would merge them
and understate the cost per call), live until their ends are fed, then all gone."""

from __future__ import annotations

from bench.call_memory import Calls, phases
from bench.tracker_ingest import DEVICES
from pbx_bridge.pbx.framing import AmiParser
from pbx_bridge.replay import ReplayTracker


def _feed(tracker: ReplayTracker, calls: Calls, ends: bool) -> dict[str, set[str]]:
    """Feeds the calls' live parts (or ends); each bridge id -> the calls it joined."""
    parser = AmiParser(expect_banner=False)
    bridges: dict[str, set[str]] = {}
    for msg in parser.feed(b"".join(calls.ends if ends else calls.live)):
        tracker.feed(msg)
        if "BridgeUniqueid" in msg and "Linkedid" in msg:
            bridges.setdefault(msg["BridgeUniqueid"], set()).add(msg["Linkedid"])
    return bridges


def test_copies_are_distinct_live_calls_until_their_ends() -> None:
    ph = phases(calls=12, recorded=5)
    tracker = ReplayTracker(DEVICES)
    bridges = _feed(tracker, ph.plain, ends=False)
    assert len(tracker.calls) == 12
    plain_channels = len(tracker.channels)
    assert plain_channels >= 24
    assert all(ch.recording is None for ch in tracker.channels.values())
    bridges.update(_feed(tracker, ph.recorded, ends=False))
    assert len(tracker.calls) == 17
    assert len(bridges) >= 17 and all(len(calls) == 1 for calls in bridges.values())
    names = [ch.name for ch in tracker.channels.values()]
    assert len(set(names)) == len(names)
    recording = [ch for ch in tracker.channels.values() if ch.recording is not None]
    assert len({ch.linkedid for ch in recording}) == 5  # each recorded copy, no plain one
    assert len({ch.rec_file for ch in recording}) == len(recording)  # a file each
    assert all(c.answered is not None for c in tracker.calls.values())
    _feed(tracker, ph.plain, ends=True)
    _feed(tracker, ph.recorded, ends=True)
    assert not tracker.calls and not tracker.channels
