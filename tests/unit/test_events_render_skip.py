"""Issue 15, ingest: most AMI events (Newexten, VarSet, ...) change nothing a view of
their call shows, and re-rendering every view of the call on each of them was half of
the full ingest path. A call whose state is unchanged since its last review is not
rendered again; the events announced stay exactly those of rendering every time."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx_bridge.calls.transcript import read_events
from pbx_bridge.events.calls import CallEvents
from pbx_bridge.server import Services
from tests.unit.api_support import make_directory, make_settings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TRANSCRIPTS = sorted(FIXTURES.glob("*.jsonl"))


def _bridge(tmp_path: Path) -> Services:
    settings = make_settings(tmp_path)
    bridge = Services(settings, make_directory(settings))
    bridge.link.reload_devices()  # the node's device map, as on a resync
    return bridge


def _announced(bridge: Services, path: Path, *, every_time: bool) -> list[tuple]:
    calls: CallEvents = bridge.events.calls
    out = []
    for ev in read_events(path):
        bridge.link.tracker.feed(ev)
        if every_time:
            calls.forget_renders()  # the old behaviour: every view, every event
        out += [(d.type, d.time, d.extension, d.phone_call_id, d.data, d.key)
                for d in calls.on_event(ev)]
    return out


def counted_renders(bridge: Services, monkeypatch) -> list[str]:  # type: ignore[no-untyped-def]
    """The numbers the events feature renders a view for, from now on."""
    renders: list[str] = []
    real = bridge.events.render

    def counted(link, call, number):  # type: ignore[no-untyped-def]
        renders.append(number)
        return real(link, call, number)

    monkeypatch.setattr(bridge.events, "render", counted)
    return renders


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_skipping_unchanged_calls_announces_the_same_events(tmp_path, path) -> None:
    skipping = _bridge(tmp_path / "a")
    reference = _bridge(tmp_path / "b")
    try:
        got = _announced(skipping, path, every_time=False)
        assert got == _announced(reference, path, every_time=True)
    finally:
        skipping.directory.close()
        reference.directory.close()


async def test_an_event_that_changes_no_call_renders_nothing(tmp_path, monkeypatch) -> None:
    bridge = _bridge(tmp_path)
    renders = counted_renders(bridge, monkeypatch)
    events = read_events(FIXTURES / "a_calls_b.jsonl")
    mid = next(ev for ev in events if ev.get("Event") == "BridgeEnter")
    try:
        for ev in events[: events.index(mid) + 1]:  # the call at its busiest
            bridge.link.tracker.feed(ev)
            bridge.events.on_event(ev)
        assert renders
        renders.clear()
        # An event that changes nothing the tracker holds (a VarSet of another
        # variable): nothing to render, nothing to announce.
        varset = {**mid, "Event": "VarSet", "Variable": "X", "Value": "1"}
        bridge.link.tracker.feed(varset)
        assert bridge.events.calls.on_event(varset) == []
        assert renders == []
        # ...while a change a view shows (the channel put on hold) renders again.
        hold = {**mid, "Event": "Hold"}
        bridge.link.tracker.feed(hold)
        bridge.events.calls.on_event(hold)
        assert renders
    finally:
        await bridge.events.drained()
        bridge.directory.close()


async def test_a_resync_with_the_same_device_map_renders_no_unchanged_call(
    tmp_path, monkeypatch,
) -> None:
    bridge = _bridge(tmp_path)
    renders = counted_renders(bridge, monkeypatch)
    tracker = bridge.link.tracker
    events = read_events(FIXTURES / "a_calls_b.jsonl")
    mid = next(ev for ev in events if ev.get("Event") == "BridgeEnter")
    try:
        for ev in events[: events.index(mid) + 1]:
            tracker.feed(ev)
            bridge.events.on_event(ev)
        devices = dict(tracker._devices)
        renders.clear()
        tracker.set_devices(devices)  # a resync: the same map again
        assert bridge.events.calls.on_snapshot(tracker.event_time(mid)) == []
        assert renders == []
        # Another map (an extension added: which numbers are local changed): all again.
        tracker.set_devices({**devices, "PJSIP/0003*299": "0003*299"})
        bridge.events.calls.on_snapshot(tracker.event_time(mid))
        assert renders
    finally:
        await bridge.events.drained()
        bridge.directory.close()
