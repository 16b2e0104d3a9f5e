"""Property tests on real transcripts: whatever the order, duplication or loss of
events, the tracker never raises, and once every channel has hung up no call is left."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pbx_bridge.calls import model
from pbx_bridge.calls.render import render_call
from pbx_bridge.calls.tracker import Call, Tracker
from pbx_bridge.calls.transcript import read_events
from pbx_bridge.replay import ReplayTracker
from tests.support.scenarios import DEVICES


def assert_renders_the_model(tracker: Tracker, call: Call) -> None:
    """The tracker renders plain dicts for speed; they must be exactly what the pydantic
    PhoneCall (the OpenAPI schema's source) validates and dumps back."""
    doc = render_call(tracker, call, "x", owner_id="3", owner_name="Org", link="http://h/p")
    assert model.PhoneCall.model_validate(doc).to_json() == doc

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TRANSCRIPTS = sorted(FIXTURES.glob("*.jsonl"))
ALL = [read_events(p) for p in TRANSCRIPTS]


@st.composite
def mangled(draw: st.DrawFn) -> list[dict[str, str]]:
    events = list(draw(st.sampled_from(ALL)))
    if draw(st.booleans()):  # interleave a second call's events
        other = draw(st.sampled_from(ALL))
        events = events + list(other)
    keep = []
    for ev in events:
        if ev.get("Event") != "Hangup" and draw(st.integers(0, 9)) == 0:
            continue  # lost
        keep.append(ev)
        if draw(st.integers(0, 9)) == 0:
            keep.append(ev)  # duplicated
    return draw(st.permutations(keep))


@settings(max_examples=300, deadline=None)
@given(mangled())
def test_no_call_outlives_its_channels(events: list[dict[str, str]]) -> None:
    tracker = ReplayTracker(DEVICES)
    for ev in events:
        tracker.feed(ev)
        for call in tracker.calls.values():  # rendering never fails mid-stream either
            assert_renders_the_model(tracker, call)
    assert not tracker.calls
    assert not tracker.channels


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(
    st.sampled_from(["Event", "Uniqueid", "Linkedid", "Channel", "ChannelState",
                     "Timestamp", "DestUniqueid", "DestLinkedid", "DestChannel",
                     "ChanVariable(PBX_VIEW)", "CallerIDNum", "DialStatus"]),
    st.one_of(st.sampled_from(["Newchannel", "Hangup", "Newstate", "MixMonitorStart",
                               "PJSIP/0003*210-00000001", "1.1", "1.2", "6", "x|01|5"]),
              st.text(max_size=8)),
), max_size=40))
def test_garbage_events_never_raise(events: list[dict[str, str]]) -> None:
    tracker = ReplayTracker(DEVICES)
    for ev in events:
        tracker.feed(ev)
    tracker.resync([e for e in events if "Uniqueid" in e])
    for call in tracker.calls.values():
        assert_renders_the_model(tracker, call)
