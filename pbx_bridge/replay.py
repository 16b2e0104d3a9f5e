"""Replaying AMI events without Asterisk: `ReplayTracker` and `pbx-bridge replay FILE`.

`ReplayTracker` is the call tracker with the recording feature's (pure) reading of the
same events, the picture of calls the running service keeps, minus the AMI link. The
`replay` command, the replay tests and the benches feed it transcripts (one AMI event
per line, calls/transcript.py) and print or check the calls as PhoneCall JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from typing import Any

from pbx_bridge.calls.render import render_call
from pbx_bridge.calls.tracker import Event, Tracker, device_of
from pbx_bridge.calls.transcript import read_events
from pbx_bridge.recording import events as recording_events

__all__ = ["ReplayTracker", "register"]


class ReplayTracker(Tracker):
    """The tracker, with recordings read from MixMonitor events and PBX_REC stamps."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.unstamped: set[str] = set()  # runs the PBX started (recording/events.py)

    def feed(self, ev: Event) -> None:
        super().feed(ev)
        recording_events.apply_event(self, ev, self.unstamped)

    def resync(self, snapshot: Iterable[Event], now: float | None = None) -> None:
        rows = list(snapshot)
        super().resync(rows, now)
        recording_events.apply_snapshot(self, rows, self.unstamped)


def _devices(args: argparse.Namespace, events: list[dict[str, str]]) -> dict[str, str]:
    if args.directory:
        from pbx_bridge.directory.store import Directory

        with Directory.open(":memory:") as directory:
            directory.load_toml(args.directory)
            return {d: e.number for d, e in directory.extensions_by_device().items()}
    # No directory given: every PJSIP endpoint seen counts as an extension of that name.
    devices: dict[str, str] = {}
    for ev in events:
        for key, value in ev.items():
            if key.endswith("Channel") and value.startswith("PJSIP/"):
                dev = device_of(value)
                devices[dev] = dev.split("/", 1)[1]
    return devices


def _dump(tracker: Tracker) -> list[dict[str, Any]]:
    out = []
    for call in sorted(tracker.calls.values(), key=lambda c: (c.published, c.linkedid)):
        exts = call.extensions()
        out.append(render_call(tracker, call, exts[0] if exts else ""))
    return out


def _cmd(args: argparse.Namespace) -> int:
    events = read_events(args.file)
    tracker = ReplayTracker(_devices(args, events))
    for n, ev in enumerate(events, 1):
        tracker.feed(ev)
        if args.trace:
            print(json.dumps({"event": n, "name": ev.get("Event"), "calls": _dump(tracker)}))
    if not args.trace:
        json.dump(_dump(tracker), sys.stdout, indent=2)
        print()
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "replay",
        help="feed AMI events (JSON lines) through the call tracker and print the calls",
        description="Replay an AMI event transcript (one JSON object of headers per line) "
        "through the call tracker and print the live calls as PhoneCall JSON.",
    )
    p.add_argument("file", help="the transcript (JSON lines)")
    p.add_argument(
        "--directory",
        metavar="TOML",
        help="directory file mapping devices to extensions "
        "(default: every PJSIP endpoint is an extension of the same name)",
    )
    p.add_argument(
        "--trace", action="store_true", help="print the calls after every event (JSON lines)"
    )
    p.set_defaults(func=_cmd)
