"""Edge cases of the tracker found by the property tests or worth pinning down."""

from __future__ import annotations

import pytest

from pbx_bridge.calls.render import caller_id, render_call
from pbx_bridge.calls.tracker import Tracker, call_id
from pbx_bridge.recording.variables import parse_rec, rec_value
from pbx_bridge.replay import ReplayTracker

DEV = {"PJSIP/0003*210": "0003*210", "PJSIP/0003*211": "0003*211"}


def chan(uid: str, lid: str, name: str, state: str = "6", **extra: str) -> dict[str, str]:
    return {"Event": "Newchannel", "Uniqueid": uid, "Linkedid": lid, "Channel": name,
            "ChannelState": state, "CallerIDNum": "0003*210", "Timestamp": "1795849232.5",
            **extra}


def test_non_finite_or_absurd_times_never_break_rendering() -> None:
    t = Tracker(DEV, clock=lambda: 1795849000.0)
    t.feed(chan("inf.1", "1e300.1", "PJSIP/0003*210-1", Timestamp="nan",
                **{"ChanVariable(PBX_VIEW)": "1e300.1|01|99999999999999999999"}))
    (call,) = t.calls.values()
    doc = render_call(t, call, "0003*210")
    assert doc["published"] == doc["answered"] == "2026-11-28T06:56:40+00:00"


def test_linkedid_change_moves_the_channel_to_the_surviving_call() -> None:
    t = Tracker(DEV)
    t.feed(chan("100.1", "100.1", "PJSIP/0003*210-1"))
    t.feed(chan("100.2", "100.2", "PJSIP/0003*211-2"))
    assert len(t.calls) == 2
    # Asterisk gives bridged channels the oldest Linkedid (e.g. attended transfer).
    t.feed({"Event": "BridgeEnter", "Uniqueid": "100.2", "Linkedid": "100.1",
            "Channel": "PJSIP/0003*211-2", "ChannelState": "6"})
    assert list(t.calls) == ["100.1"]
    call = t.call(call_id("100.1"))
    assert call is not None and call.extensions() == ["0003*210", "0003*211"]
    assert not t.calls_of("0003*211") == []
    t.feed({"Event": "Hangup", "Uniqueid": "100.1"})
    t.feed({"Event": "Hangup", "Uniqueid": "100.2"})
    assert not t.calls and not t.calls_of("0003*210") and not t.calls_of("0003*211")


def test_late_events_for_a_hung_up_channel_do_not_resurrect_it() -> None:
    t = Tracker(DEV)
    t.feed({"Event": "Hangup", "Uniqueid": "100.1"})
    t.feed(chan("100.1", "100.1", "PJSIP/0003*210-1"))
    assert not t.calls


def test_directory_change_relabels_live_channels() -> None:
    t = Tracker({})
    t.feed(chan("100.1", "100.1", "PJSIP/0003*210-1"))
    assert t.calls_of("0003*210") == []
    t.set_devices(DEV)
    (call,) = t.calls_of("0003*210")
    assert call.view_ids == {"0003*210": "01"}


def test_resync_drops_what_asterisk_no_longer_has_and_keeps_view_ids() -> None:
    t = Tracker(DEV)
    t.feed(chan("100.1", "100.1", "PJSIP/0003*210-1"))
    t.feed(chan("100.2", "100.1", "PJSIP/0003*211-2"))
    t.feed(chan("200.1", "200.1", "PJSIP/0003*211-3"))
    t.resync([
        {"Event": "CoreShowChannel", "Uniqueid": "100.2", "Linkedid": "100.1",
         "Channel": "PJSIP/0003*211-2", "ChannelState": "6"},
    ])
    assert set(t.channels) == {"100.2"}
    (call,) = t.calls.values()
    assert call.view_ids["0003*211"] == "02"  # the id it had, not renumbered


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1795849232.250|3/0003*210/2026-11-28/abc-01-062032.wav",
         (1795849232.25, "3/0003*210/2026-11-28/abc-01-062032.wav")),
        ("1795849232", (1795849232.0, None)),  # a bare epoch, as bridges wrote it before
        ("1795849232|", (1795849232.0, None)),
        ("", (None, None)),
        (None, (None, None)),
        ("nan|x.wav", (None, None)),
        ("garbage|x.wav", (None, None)),
        ("1|/a|b.wav", (1.0, "/a|b.wav")),  # only the first "|" separates
    ],
)
def test_pbx_rec_values(value: str | None, expected: tuple) -> None:
    assert parse_rec(value) == expected
    if expected[1] is not None:
        assert parse_rec(rec_value(value.partition("|")[0], expected[1])) == expected


def test_recording_and_its_file_come_from_pbx_rec_on_events_and_resync() -> None:
    rec = {"ChanVariable(PBX_REC)": "1795849240.000|3/0003*210/d/f-01-062040.wav"}
    live = ReplayTracker(DEV)
    live.feed(chan("100.1", "100.1", "PJSIP/0003*210-1"))
    live.feed({**chan("100.1", "100.1", "PJSIP/0003*210-1"), "Event": "MixMonitorStart", **rec})
    (ch,) = live.channels.values()
    assert (ch.recording, ch.rec_file) == (1795849240.0, "3/0003*210/d/f-01-062040.wav")
    fresh = ReplayTracker(DEV)
    fresh.resync([{**chan("100.1", "100.1", "PJSIP/0003*210-1"), "Event": "CoreShowChannel",
                   **rec}])
    (ch,) = fresh.channels.values()
    assert (ch.recording, ch.rec_file) == (1795849240.0, "3/0003*210/d/f-01-062040.wav")


def test_non_ascii_digits_in_numeric_fields_are_ignored() -> None:
    """"²".isdigit() is True but int("²") raises: found by the hypothesis test."""
    t = Tracker(DEV)
    t.feed(chan("100.1", "100.1", "PJSIP/0003*210-1", state="²",
                **{"ChanVariable(PBX_VIEW)": "100.1|٠²|1795849232"}))
    (ch,) = t.channels.values()
    assert ch.state == 0
    (call,) = t.calls.values()
    assert call.view_ids == {"0003*210": "01"}


@pytest.mark.parametrize(
    ("num", "name", "expected"),
    [("0003*210", "John", "John <0003*210>"), ("7778888", "", "<7778888>"),
     ("", "Bob", "Bob"), ("<unknown>", "Bob", "Bob"), ("", "", None),
     ("<unknown>", "<unknown>", None)],
)
def test_caller_id(num: str, name: str, expected: str | None) -> None:
    t = Tracker(DEV)
    t.feed(chan("100.1", "100.1", "PJSIP/pstn-1", CallerIDNum=num, CallerIDName=name))
    (call,) = t.calls.values()
    assert caller_id(call) == expected
