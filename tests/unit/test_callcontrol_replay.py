"""Call control replayed from transcripts captured on the real Asterisk
(tests/fixtures/api_transfer.jsonl, barge_in.jsonl: `python -m tests.support.capture
api_transfer barge_in`), each made with the very AMI action pbx_bridge/callcontrol sends
(BlindTransfer; Originate of ChanSpy with B). Issue 14 item 5: a recorded view that is
transferred or barged keeps its recording state true, in the PhoneCall and the catalog."""

from __future__ import annotations

from pbx_bridge.calls.render import render_call
from tests.unit.test_recordings_transfers import Replay, hangup_time, recorded_replay, transcript

A, B, C = "0003*210", "0003*211", "0003*212"


def views(replay: Replay, extension: str) -> dict[str, dict]:
    (call,) = replay.tracker.calls_of(extension)
    return {v["extension"]: v for v in
            render_call(replay.tracker, call, extension)["phoneCallView"]}


def index_of(evs: list[dict[str, str]], name: str) -> int:
    return next(i for i, e in enumerate(evs) if e.get("Event") == name)


def test_the_transcripts_hold_the_actions_the_bridge_sends() -> None:
    transfer = next(e for e in transcript("api_transfer") if e.get("Event") == "BlindTransfer")
    assert (transfer["Result"], transfer["Extension"], transfer["Context"]) == (
        "Success", C, "pbx-bridge-dial")
    assert transfer["TransfererChannel"].startswith(f"PJSIP/{B}-")
    spy = next(e for e in transcript("barge_in") if e.get("Event") == "ChanSpyStart")
    assert spy["SpyeeChannel"].startswith(f"PJSIP/{A}-")
    assert spy["SpyerChannel"].startswith(f"Local/{C}@pbx-bridge-dial-")


def test_a_transferred_call_keeps_the_other_partys_recording() -> None:
    """A records (*1 in the transcript) and B too; the bridge's Transfer of B's view to
    C: B's run ends `transferred` at B's hang-up, A's goes on with C (one row, still
    shown on A's view) and ends when A hangs up."""
    replay, evs = recorded_replay("api_transfer", f"PJSIP/{B}")
    answered = next(i for i, e in enumerate(evs) if e.get("Event") == "BridgeEnter"
                    and e.get("Channel", "").startswith(f"PJSIP/{C}-"))
    replay.feed_all(evs[:answered + 1])
    shown = views(replay, A)
    assert set(shown) == {A, C}, shown
    assert "recording" in shown[A] and "recording" not in shown[C]
    a = replay.row_of(f"PJSIP/{A}")
    assert (a.started_by, a.stopped) == ("star1", None)
    assert shown[A]["recordingId"] == a.id
    replay.feed_all(evs[answered + 1:])
    b, a = replay.row_of(f"PJSIP/{B}"), replay.row_of(f"PJSIP/{A}")
    assert (b.reason, b.stopped) == ("transferred", hangup_time(evs, f"PJSIP/{B}"))
    assert (a.reason, a.stopped) == (None, hangup_time(evs, f"PJSIP/{A}"))
    assert replay.catalog.running == {}


def test_a_barged_call_keeps_its_recording_and_the_spy_stays_apart() -> None:
    """A records; C barges in on A's view (ChanSpy B): A's call keeps its two views and
    A's recording; the spy is C's own call; A's run ends at A's hang-up only."""
    replay, evs = recorded_replay("barge_in", f"PJSIP/{A}")
    started = index_of(evs, "ChanSpyStart")
    replay.feed_all(evs[:started + 1])
    shown = views(replay, A)
    assert set(shown) == {A, B} and "recording" in shown[A], shown
    (spy_call,) = replay.tracker.calls_of(C)
    (a_call,) = replay.tracker.calls_of(A)
    assert spy_call is not a_call and A not in spy_call.extensions()
    assert replay.row_of(f"PJSIP/{A}").stopped is None
    replay.feed_all(evs[started + 1:])
    a = replay.row_of(f"PJSIP/{A}")
    assert (a.reason, a.stopped) == (None, hangup_time(evs, f"PJSIP/{A}"))
    assert not replay.tracker.calls
