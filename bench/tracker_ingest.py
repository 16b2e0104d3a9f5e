"""Tracker ingest and memory, side by side with the floor of just parsing the bytes.

    .venv/bin/python bench/tracker_ingest.py [--repeat N] [--json OUT]

(a) events/s: the captured transcripts (tests/fixtures/*.jsonl) turned back into AMI
    wire bytes, then 1) parsed only (AmiParser), 2) parsed and fed through the tracker.
(b) memory per live channel with 1,000 channels (500 two-party calls), by tracemalloc.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
import tracemalloc
from pathlib import Path

from pbx_bridge.calls.transcript import read_events
from pbx_bridge.pbx.framing import AmiParser
from pbx_bridge.replay import ReplayTracker

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
DEVICES = {f"PJSIP/0003*2{n:02d}": f"0003*2{n:02d}" for n in range(100)}


def wire(ev: dict[str, str]) -> bytes:
    lines = []
    for k, v in ev.items():
        if k.endswith(")") and "ChanVariable(" in k:
            prefix, _, name = k[:-1].partition("(")
            lines.append(f"{prefix}: {name}={v}")
        else:
            # A repeated key was joined with "\n" by the parser: its lines again.
            lines.extend(f"{k}: {part}" for part in v.split("\n"))
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def stream(repeat: int) -> tuple[bytes, int]:
    events = [ev for p in sorted(FIXTURES.glob("*.jsonl")) for ev in read_events(p)]
    if not events:
        raise SystemExit("no transcripts in tests/fixtures: run python -m tests.support.capture")
    chunk = b"".join(wire(ev) for ev in events)
    return b"Asterisk Call Manager/11.0.0\r\n" + chunk * repeat, len(events) * repeat


def best_of(fn, n: int = 5) -> float:
    best = float("inf")
    for _ in range(n):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def ingest(data: bytes, parse_only: bool) -> None:
    parser = AmiParser()
    tracker = ReplayTracker(DEVICES)
    for i in range(0, len(data), 65536):  # TCP-sized reads
        msgs = parser.feed(data[i : i + 65536])
        if not parse_only:
            for m in msgs:
                tracker.feed(m)


def memory_per_channel(n_channels: int = 1000) -> float:
    def events():
        for i in range(n_channels // 2):
            lid = f"1795849000.{2 * i}"
            for j, ext in enumerate(("0003*210", "0003*211")):
                uid = f"1795849000.{2 * i + j}"
                base = {
                    "Channel": f"PJSIP/{ext}-{2 * i + j:08x}", "ChannelState": "6",
                    "ChannelStateDesc": "Up", "CallerIDNum": ext, "CallerIDName": "John Doe",
                    "Exten": "0003*211", "Context": "from-internal", "Uniqueid": uid,
                    "Linkedid": lid, "Timestamp": "1795849000.5",
                    "ChanVariable(PBX_VIEW)": "", "ChanVariable(PBX_REC)": "",
                }
                yield {"Event": "Newchannel", **base}

    evs = list(events())
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    tracker = ReplayTracker(DEVICES)
    for ev in evs:
        tracker.feed(ev)
    tracker.take_effects()
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    used = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert len(tracker.channels) == n_channels
    return used / n_channels


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=200, help="transcript repetitions")
    ap.add_argument("--json", help="write the results to this file")
    args = ap.parse_args()
    data, n = stream(args.repeat)
    t_parse = best_of(lambda: ingest(data, True))
    t_full = best_of(lambda: ingest(data, False))
    mem = memory_per_channel()
    res = {
        "events": n,
        "bytes": len(data),
        "parse_only_events_per_s": n / t_parse,
        "parse_and_track_events_per_s": n / t_full,
        "tracker_only_events_per_s": n / max(t_full - t_parse, 1e-9),
        "ratio_full_to_parse": t_full / t_parse,
        "bytes_per_live_channel_at_1000": mem,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(f"{'path':<28}{'events/s':>14}{'vs parse only':>16}")
    print(f"{'parse only (floor)':<28}{res['parse_only_events_per_s']:>14,.0f}{1.0:>15.2f}x")
    print(f"{'parse + tracker':<28}{res['parse_and_track_events_per_s']:>14,.0f}"
          f"{res['ratio_full_to_parse']:>15.2f}x")
    print(f"{'tracker alone (derived)':<28}{res['tracker_only_events_per_s']:>14,.0f}")
    print(f"memory per live channel at 1,000 channels: {mem:,.0f} bytes")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
