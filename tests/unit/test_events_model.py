"""Event production, pure: the AMI transcripts captured from the real Asterisk
(tests/fixtures/*.jsonl) replayed through the tracker give exactly the expected call
events per view, in order; catalog rows give the recording events."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx_bridge.calls.render import render_call
from pbx_bridge.calls.transcript import read_events
from pbx_bridge.events.calls import CallEvents
from pbx_bridge.events.model import Event, event_id
from pbx_bridge.events.recordings import RecordingEvents
from pbx_bridge.recordings.catalog import RecordingRow
from pbx_bridge.replay import ReplayTracker
from tests.support.scenarios import DEVICES

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
A, B, C = "0003*210", "0003*211", "0003*212"

# (type, extension, VoipNow callEventType) per scenario, in order.
EXPECTED = {
    "a_calls_b": [("ringing", A, 1), ("ringing", B, 0), ("answered", B, 3),
                  ("answered", A, 4), ("hangup", B, 2), ("hangup", A, 2)],
    "ext_to_public": [("ringing", A, 1), ("answered", A, 4), ("hangup", A, 2)],
    "public_to_ext": [("ringing", A, 0), ("answered", A, 3), ("hangup", A, 2)],
    "unanswered": [("ringing", A, 1), ("ringing", B, 0), ("hangup", B, 2), ("hangup", A, 2)],
    "busy": [("ringing", A, 1), ("ringing", B, 0), ("hangup", B, 2), ("hangup", A, 2)],
    "blind_transfer": [("ringing", A, 1), ("ringing", B, 0), ("answered", B, 3),
                       ("answered", A, 4), ("hangup", B, 2), ("ringing", C, 0),
                       ("answered", C, 3), ("hangup", A, 2), ("hangup", C, 2)],
}


def replay(name: str) -> tuple[list[tuple[str, str, int]], list[dict[str, object]]]:
    tracker = ReplayTracker(DEVICES)
    producer = CallEvents(tracker, lambda call, ext: render_call(tracker, call, ext))
    seen, data = [], []
    for ev in read_events(FIXTURES / f"{name}.jsonl"):
        tracker.feed(ev)
        for d in producer.on_event(ev):
            seen.append((d.type.removeprefix("call."), d.extension, d.data["callEventType"]))
            data.append(d.data)
    return seen, data


@pytest.mark.parametrize("name", list(EXPECTED))
def test_a_transcript_gives_exactly_the_expected_call_events(name: str) -> None:
    seen, _ = replay(name)
    assert seen == EXPECTED[name]


def test_hangup_carries_the_phonecall_as_it_was() -> None:
    _, data = replay("a_calls_b")
    hangup = data[-1]
    assert hangup["callEventType"] == 2
    own = [v for v in hangup["phoneCallView"] if v["extension"] == A]  # type: ignore[union-attr]
    assert [v["status"] for v in own] == ["5"]  # on call, as it was last seen
    assert "answered" in hangup


def test_a_resync_does_not_announce_again_what_was_announced() -> None:
    """A restarted bridge (announced views from its history) that resyncs mid-call says
    nothing new; the hangup after it still comes."""
    events = read_events(FIXTURES / "a_calls_b.jsonl")
    live = ReplayTracker(DEVICES)
    first = CallEvents(live, lambda call, ext: render_call(live, call, ext))
    announced: dict[tuple[str, str], str] = {}
    cut = next(i for i, ev in enumerate(events) if ev.get("Event") == "BridgeEnter") + 2
    for ev in events[:cut]:
        live.feed(ev)
        for d in first.on_event(ev):
            announced[(d.phone_call_id or "", d.extension)] = d.type.removeprefix("call.")
    assert set(announced.values()) == {"answered"}
    fresh = ReplayTracker(DEVICES)
    second = CallEvents(fresh, lambda call, ext: render_call(fresh, call, ext), announced)
    fresh.resync([
        {"Event": "CoreShowChannel", "Channel": ch.name, "Uniqueid": ch.uniqueid,
         "Linkedid": ch.linkedid, "ChannelState": str(ch.state), "CallerIDNum": ch.caller_num,
         "Exten": ch.exten}
        for ch in live.channels.values()
    ])
    assert second.on_snapshot(0.0) == []
    fresh.resync([])
    assert sorted(d.type for d in second.on_snapshot(1.0)) == ["call.hangup", "call.hangup"]


def _row(**kw: object) -> RecordingRow:
    base = dict(id="r-00000000000000aa", extension=A, call_id="ab" * 10, view_id="01",
                started=100.0, owner=3, organization=1)
    return RecordingRow(**{**base, **kw})  # type: ignore[arg-type]


def test_recording_rows_give_start_pause_resume_stop_complete() -> None:
    producer = RecordingEvents("https://pbx.example.com")
    steps = [
        _row(),
        _row(file="x.wav"),  # the file learnt: no event
        _row(state="paused", paused=[[103.0, None]]),
        _row(paused=[[103.0, 105.0]]),
        _row(paused=[[103.0, 105.0]], stopped=110.0),
        _row(paused=[[103.0, 105.0]], stopped=110.0, state="completed", size=10, sha256="ff",
             duration=10.0),
    ]
    kinds = [[d.type for d in producer.on_row(r, 200.0)] for r in steps]
    assert kinds == [["recording.started"], [], ["recording.paused"], ["recording.resumed"],
                     ["recording.stopped"], ["recording.completed"]]
    done = producer.on_row(_row(id="r-00000000000000bb", state="missing", stopped=1.0), 2.0)
    assert [d.type for d in done] == ["recording.started", "recording.stopped",
                                      "recording.failed"]


def test_a_completed_recording_event_links_its_media() -> None:
    producer = RecordingEvents("https://pbx.example.com")
    producer.on_row(_row(stopped=110.0), 111.0)
    (done,) = producer.on_row(_row(stopped=110.0, state="completed", size=5, sha256="aa",
                                   duration=1.5), 112.0)
    assert done.time == 112.0
    assert done.data["link"]["media"] == (
        f"https://pbx.example.com/uapi/recordings/3/{A}/r-00000000000000aa/media")
    assert done.data["size"] == 5 and done.data["state"] == "completed"


def test_a_row_running_before_a_restart_is_not_started_again() -> None:
    producer = RecordingEvents("", running=[_row(state="paused", paused=[[101.0, None]])])
    assert [d.type for d in producer.on_row(_row(paused=[[101.0, 104.0]]), 105.0)] == [
        "recording.resumed"]


def test_event_json_follows_the_contract() -> None:
    ev = Event(seq=127906, id=event_id(127906), type="recording.completed", time=0.0,
               organization=3, extension=A, phone_call_id="b8" * 10, data={"x": 1})
    assert ev.to_json() == {
        "id": "evt-000000000001f3a2", "seq": 127906, "type": "recording.completed",
        "time": "1970-01-01T00:00:00+00:00", "ownerId": "3", "extension": A,
        "phoneCallId": "b8" * 10, "data": {"x": 1}}


def _keys(name: str) -> list[str]:
    tracker = ReplayTracker(DEVICES)
    producer = CallEvents(tracker, lambda call, ext: render_call(tracker, call, ext))
    keys = []
    for ev in read_events(FIXTURES / f"{name}.jsonl"):
        tracker.feed(ev)
        keys += [d.key for d in producer.on_event(ev)]
    return keys


@pytest.mark.parametrize("name", list(EXPECTED))
def test_two_bridges_hearing_the_same_events_key_them_alike(name: str) -> None:
    """Replicas store an event once by its key: the key comes from what Asterisk sent
    (two independent producers agree), and no two events of a call share one."""
    first, second = _keys(name), _keys(name)
    assert first == second and len(set(first)) == len(first) == len(EXPECTED[name])


def test_a_restarted_bridge_hangs_up_a_view_under_the_key_the_others_use() -> None:
    """A bridge restarted mid-call reads the view's anchor back from the history's keys,
    so its call.hangup is the same event as the one a bridge that stayed up makes."""
    from pbx_bridge.events.keys import anchor_of

    events = read_events(FIXTURES / "a_calls_b.jsonl")
    stayed = _keys("a_calls_b")
    cut = next(i for i, ev in enumerate(events) if ev.get("Event") == "BridgeEnter") + 2
    live = ReplayTracker(DEVICES)
    first = CallEvents(live, lambda call, ext: render_call(live, call, ext))
    announced: dict[tuple[str, str], str] = {}
    anchors: dict[tuple[str, str], str] = {}
    for ev in events[:cut]:
        live.feed(ev)
        for d in first.on_event(ev):
            announced[(d.phone_call_id or "", d.extension)] = d.type.removeprefix("call.")
            anchors[(d.phone_call_id or "", d.extension)] = anchor_of(d.key) or ""
    fresh = ReplayTracker(DEVICES)
    second = CallEvents(fresh, lambda call, ext: render_call(fresh, call, ext), announced,
                        anchors)
    fresh.resync([])  # it came back after the call ended
    hangups = [d.key for d in second.on_snapshot(1.0)]
    assert sorted(hangups) == sorted(k for k in stayed if k.startswith("call|hangup|"))
