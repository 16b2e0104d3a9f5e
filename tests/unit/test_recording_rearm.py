"""Re-arming a recording whose channel got a new peer (recording/rearm.py), and the
catalog keeping it one row across the re-arm's stop and start (recordings/catalog.py).
The bridge sequences are the ones Asterisk 22 sent in the sandbox's transfers
(tests/e2e/test_recordings_transfers.py)."""

from __future__ import annotations

from pbx_bridge.recording.rearm import Peers
from pbx_bridge.recordings.catalog import REARM_FAILED
from tests.unit.test_recordings_catalog import T0, Pbx, _stamp

A, B, JANE, L1, L2 = "a", "b", "jane", "local1", "local2"


def _replay(steps: list[tuple[str, str, str]]) -> list[str]:
    peers, out = Peers(), []
    for name, uid, bridge in steps:
        out += peers.on_event({"Event": name, "Uniqueid": uid, "BridgeUniqueid": bridge})
    return out


CALL = [("BridgeEnter", B, "x"), ("BridgeEnter", A, "x")]


def test_a_plain_call_re_arms_nothing() -> None:
    assert _replay([*CALL, ("BridgeLeave", B, "x"), ("BridgeLeave", A, "x")]) == []


def test_blind_transfer_re_arms_the_transferee_only() -> None:
    # B leaves and hangs up; A dials Jane itself and meets her in a new bridge.
    assert _replay([*CALL, ("BridgeLeave", B, "x"), ("Hangup", B, ""),
                    ("BridgeLeave", A, "x"), ("BridgeEnter", JANE, "y"),
                    ("BridgeEnter", A, "y")]) == [A]


def test_attended_transfer_re_arms_the_consultation_and_both_parties_left() -> None:
    steps = [
        *CALL,
        ("BridgeEnter", L1, "c"), ("BridgeLeave", B, "x"), ("BridgeEnter", B, "c"),  # *2
        ("BridgeEnter", JANE, "j"), ("BridgeEnter", L2, "j"),  # Jane answers
        ("BridgeLeave", B, "c"), ("BridgeLeave", L1, "c"), ("BridgeEnter", L1, "x"),
        ("Hangup", B, ""),  # B hung up: transferred
        ("BridgeLeave", A, "x"), ("BridgeLeave", L2, "j"), ("BridgeEnter", A, "j"),
    ]
    # (the Local half too: only channels that record are re-armed, see `Rearmer`)
    assert _replay(steps) == [B, A, L1, A, JANE]


def _rearming(pbx: Pbx, on: bool) -> None:
    pbx.tracker.channels[pbx.uid].rearming = on


def test_a_re_armed_run_stays_one_row() -> None:
    pbx = Pbx()
    pbx.feed("Newchannel", T0)
    (row,) = pbx.feed("MixMonitorStart", T0 + 1, **_stamp("api.wav", T0 + 0.5))
    _rearming(pbx, True)
    assert pbx.feed("MixMonitorStop", T0 + 5, **_stamp("api.wav", T0 + 0.5)) == []
    (again,) = pbx.feed("MixMonitorStart", T0 + 5.3, **_stamp("api.wav", T0 + 0.5))
    _rearming(pbx, False)
    assert again is row and again.state == "recording" and again.stopped is None
    assert pbx.tracker.channels[pbx.uid].rec_id == row.id  # the view shows it again
    (done,) = pbx.feed("Hangup", T0 + 9)
    assert done is row and (done.stopped, done.reason) == (T0 + 9, None)


def test_a_re_arm_that_does_not_start_again_ends_the_row_where_it_stopped() -> None:
    pbx = Pbx()
    pbx.feed("Newchannel", T0)
    (row,) = pbx.feed("MixMonitorStart", T0 + 1, **_stamp("api.wav", T0 + 0.5))
    _rearming(pbx, True)
    assert pbx.feed("MixMonitorStop", T0 + 5) == []
    _rearming(pbx, False)
    (done,) = pbx.feed("Hangup", T0 + 9)
    assert done is row and (done.stopped, done.reason) == (T0 + 5, REARM_FAILED)
    assert pbx.catalog.running == {}


def test_another_run_on_a_parked_channel_is_a_new_row() -> None:
    pbx = Pbx()
    pbx.feed("Newchannel", T0)
    (row,) = pbx.feed("MixMonitorStart", T0 + 1, **_stamp("api.wav", T0 + 0.5))
    _rearming(pbx, True)
    pbx.feed("MixMonitorStop", T0 + 5)
    _rearming(pbx, False)
    ended, new = pbx.feed("MixMonitorStart", T0 + 7, **_stamp("other.wav", T0 + 7))
    assert ended is row and (ended.stopped, ended.reason) == (T0 + 5, REARM_FAILED)
    assert new is not row and new.file == "other.wav" and new.state == "recording"


def test_a_plain_stop_still_ends_the_run() -> None:
    pbx = Pbx()
    pbx.feed("Newchannel", T0)
    pbx.feed("MixMonitorStart", T0 + 1, **_stamp("api.wav", T0 + 0.5))
    (row,) = pbx.feed("MixMonitorStop", T0 + 5)
    assert (row.stopped, row.reason) == (T0 + 5, None)
