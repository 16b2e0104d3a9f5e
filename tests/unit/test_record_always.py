"""Recording "always" (recording/auto.py) replayed over the transcripts captured from the
real Asterisk: as if every extension recorded every call, the bridge starts exactly one
MixMonitor per answered, concrete extension channel, never on a ringing or Local one."""

from __future__ import annotations

import pytest

from pbx_bridge.calls.tracker import Tracker
from pbx_bridge.directory.models import Extension
from pbx_bridge.recording import always as auto
from tests.support.scenarios import DEVICES, SCENARIOS
from tests.unit.test_tracker_replay import load

ALWAYS = set(DEVICES.values())


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_one_start_per_answered_extension_channel(name: str) -> None:
    events, _ = load(name)
    tracker = Tracker(DEVICES)
    tried: set[str] = set()
    started: list[str] = []
    answered: set[str] = set()  # extension channels that were ever up
    for ev in events:
        tracker.feed(ev)
        answered |= {uid for uid, c in tracker.channels.items()
                     if c.extension and c.state == 6 and not c.name.startswith("Local/")}
        call = auto.touched_call(tracker, ev)
        if call is None:
            continue
        for ext, ch in auto.due(tracker, call, ALWAYS, tried):
            assert ch.state == 6 and ch.extension == ext, (ev, ch)
            assert not ch.name.startswith("Local/"), ch.name
            assert call.linkedid == ch.linkedid and ext in call.view_ids
            tried.add(ch.uniqueid)
            started.append(ch.uniqueid)
            ch.recording = float(ev.get("Timestamp", "0"))  # what a start leaves
        assert auto.due(tracker, call, ALWAYS, tried) == []  # nothing twice
    assert len(started) == len(set(started))
    assert set(started) == answered, (sorted(started), sorted(answered))


def test_a_channel_that_records_already_is_left_alone() -> None:
    events, _ = load("ext_to_public")
    # Replay to the moment the call is answered, then mark it recorded by someone else.
    tracker = Tracker(DEVICES)
    for ev in events:
        tracker.feed(ev)
        call = auto.touched_call(tracker, ev)
        if call and auto.due(tracker, call, ALWAYS, set()):
            break
    else:
        pytest.fail("the call was never answered")
    (ext,) = [e for e, _ in auto.due(tracker, call, ALWAYS, set())]
    for ch in call.channels_of(ext):
        ch.recording = 1.0  # e.g. *1 or an earlier StartRecording
    assert auto.due(tracker, call, ALWAYS, set()) == []
    assert auto.due(tracker, call, set(), set()) == []  # and nobody else records always


@pytest.mark.parametrize(
    ("enabled", "trigger", "expected"),
    [(True, "always", True), (True, "star1", False), (False, "always", False)],
)
def test_records_always(enabled: bool, trigger: str, expected: bool) -> None:
    ext = Extension(number="0003*213", owner=13, device="PJSIP/0003*213",
                    recording={"enabled": enabled, "trigger": trigger})
    assert auto.records_always(ext) is expected
