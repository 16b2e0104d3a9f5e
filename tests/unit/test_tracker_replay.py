"""Replays the transcripts captured from the real Asterisk (tests/fixtures/, written by
`python -m tests.support.capture`) and checks the tracker at every checkpoint against
what Asterisk itself reported there and against the views a user should see."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pbx_bridge.calls.render import render_call
from pbx_bridge.calls.transcript import read_events
from pbx_bridge.replay import ReplayTracker
from tests.support.scenarios import DEVICES, SCENARIOS, Checkpoint, compare

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def load(name: str) -> tuple[list[dict[str, str]], list[Checkpoint]]:
    events = read_events(FIXTURES / f"{name}.jsonl")
    cps = json.loads((FIXTURES / f"{name}.checkpoints.json").read_text())
    return events, [Checkpoint.from_json(c) for c in cps]


def test_every_scenario_has_a_transcript() -> None:
    missing = [n for n in SCENARIOS if not (FIXTURES / f"{n}.jsonl").exists()]
    assert not missing, f"capture them: python -m tests.support.capture {' '.join(missing)}"


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_replay_matches_asterisk_at_every_checkpoint(name: str) -> None:
    events, checkpoints = load(name)
    tracker = ReplayTracker(DEVICES)
    fed = 0
    problems: list[str] = []
    for cp in checkpoints:
        tracker.feed_many(events[fed : cp.event_index])
        fed = cp.event_index
        problems += compare(tracker, cp)
    tracker.feed_many(events[fed:])
    assert not problems, "\n".join(problems)
    assert not tracker.calls and not tracker.channels


# The parking lot rings the parker's phone again: a new, unanswered channel, which
# carries no PBX_VIEW yet, so a bridge starting right then cannot know the parker's old
# view id (it gets the next one; once answered, the id is written as always).
RESYNC_UNKNOWABLE = {("park_timeout", "rings the parker")}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_resync_at_any_checkpoint_rebuilds_the_same_views(name: str) -> None:
    """A bridge that starts mid-call (only Asterisk's channel list, plus the channel
    variables the first bridge wrote) shows the same views with the same ids."""
    events, checkpoints = load(name)
    for cp in checkpoints:
        if (name, cp.label) in RESYNC_UNKNOWABLE:
            continue
        live = ReplayTracker(DEVICES)
        live.feed_many(events[: cp.event_index])
        effects = {e.channel: e.value for e in live.take_effects()}
        # What CoreShowChannels would carry: the channel list plus PBX_VIEW as written.
        snapshot = []
        for item in cp.asterisk:
            ev = dict(item)
            ev["ChanVariable(PBX_VIEW)"] = effects.get(item["Channel"], "")
            snapshot.append(ev)
        fresh = ReplayTracker(DEVICES)
        fresh.resync(snapshot)
        for lid, call in live.calls.items():
            other = fresh.calls.get(lid)
            assert other is not None, f"[{cp.label}] call {lid} lost on resync"
            assert other.id == call.id
            # A parker whose phone left keeps its view from ParkedCall, which no channel
            # list carries: after a restart it shows again with the next parking event
            # (docs/contract.md section 8). Every other view must come back.
            parkers = {c.parked_by for c in call.channels.values() if c.parked is not None}
            want = {e: call.view_ids[e] for e in call.extensions()
                    if call.channels_of(e) or e not in parkers}
            got = {e: other.view_ids[e] for e in other.extensions()}
            assert got == want, f"[{cp.label}] views {got} != {want}"
            for ext in call.extensions():  # answer times come back from PBX_VIEW
                mine = {c.answered and int(c.answered) for c in call.channels_of(ext)}
                theirs = {c.answered and int(c.answered) for c in other.channels_of(ext)}
                assert mine == theirs, f"[{cp.label}] {ext} answered {theirs} != {mine}"


def test_the_busy_transcript_is_a_rejection_seen_while_ringing() -> None:
    """The `busy` scenario checks something: both views while B rings (statuses 4 and
    3), then B's 486 (DialStatus BUSY) leaves no call and no view behind."""
    events, checkpoints = load("busy")
    assert [cp.label for cp in checkpoints] == ["ringing", "ended"]
    assert [v.status for v in checkpoints[0].expected[0]] == ["4", "3"]
    assert any(e.get("Event") == "DialEnd" and e.get("DialStatus") == "BUSY" for e in events)
    tracker = ReplayTracker(DEVICES)
    tracker.feed_many(events[: checkpoints[0].event_index])
    (call,) = tracker.calls.values()
    views = render_call(tracker, call, "0003*210")["phoneCallView"]
    assert [(v["extension"], v["status"]) for v in views] == [("0003*210", "4"), ("0003*211", "3")]
    tracker.feed_many(events[checkpoints[0].event_index :])
    assert not tracker.calls and not tracker.channels
