"""Memory per live call: what one call, set up and answered, costs the whole bridge
process (`Services`: the link and its tracker, recording, the recordings catalog, events,
holding, dialing, their caches), measured by tracemalloc, and where it goes.

    .venv/bin/python -m bench.call_memory [--calls 1000] [--recorded N] [--json OUT]

The calls are the captured transcripts (tests/fixtures/*.jsonl) cut before their first
hangup event: live calls. Each copy gets its own ids (Uniqueid/Linkedid by
bench/replay.py's ``rewrite``; channel names, bridge ids and recording file names here),
so every copy is a distinct call. The stand-in AMI server (bench/replay.py) plays them
through the full path (AmiClient -> PbxLink -> tracker -> every feature; SQLite in a temp
dir, the demo directory), in phases on one connection:

1. warm-up: a few calls of each kind set up and hung up (first-use allocations);
2. ``--calls`` plain live calls (no recording);
3. ``--recorded`` live calls recorded with *1 (a MixMonitorStart carrying PBX_REC: the
   catalog's row too);
4. the rest of every call (MixMonitorStop, the hangups): what is still held after it is
   a leak, or bounded history (the tracker's tombstones).

A tracemalloc snapshot after each phase (bench/ files filtered out): bytes per call and
per channel, the top sites by file and by line. RSS comes from two passes before it,
without tracemalloc (its own traces would inflate RSS): as it is, the way `make bench`
measures it, and after glibc's ``malloc_trim(0)`` (freed heap given back).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import logging
import re
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.ingest_path import DIRECTORY
from bench.replay import ReplayServer, rewrite
from bench.tracker_ingest import FIXTURES, wire
from pbx_bridge.calls.transcript import read_events
from pbx_bridge.config import Settings
from pbx_bridge.directory.store import Directory
from pbx_bridge.pbx.ami import AmiClient
from pbx_bridge.server import Services

#: Answered two-party calls; hold.jsonl is a newer capture (VarSet, Newexten, hold).
PLAIN = ("a_calls_b", "ext_to_public", "public_to_ext", "hold")
#: a_calls_b's *1 recording: MixMonitorStart with PBX_REC, cut before its MixMonitorStop.
RECORDED = ("a_calls_b",)
WARMUP = 5  # calls of each kind
HANGUP = {"HangupRequest", "SoftHangupRequest", "Hangup"}
MIXMONITOR = {"MixMonitorStart", "MixMonitorStop"}
SETTLE = 1.0  # s after a phase: the catalog's and events' writes (write_delay, settle)

_CHANNEL_SEQ = re.compile(rb"(?<=[\w*@/;-])-([0-9a-f]{8})\b")  # PJSIP/0003*210-00000000
_UUID_HEAD = re.compile(rb"\b[0-9a-f]{8}(?=-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
_REC_TOKEN = re.compile(rb"(?<=/)[0-9a-f]{20}(?=-\d\d-)")  # *1 file name's random part


@dataclass
class Template:
    """One captured call: its live part (cut at ``cut``) and the rest."""

    name: str
    blocks: list[bytes]
    cut: int


def template(name: str, recorded: bool) -> Template:
    events = [ev for ev in read_events(FIXTURES / f"{name}.jsonl")
              if any(k.endswith("Uniqueid") for k in ev)]  # calls' events only
    if not recorded:
        events = [ev for ev in events if ev.get("Event") not in MIXMONITOR]
    ends = HANGUP | ({"MixMonitorStop"} if recorded else set())
    cut = next(i for i, ev in enumerate(events) if ev.get("Event") in ends)
    if recorded and not any(ev.get("Event") == "MixMonitorStart" for ev in events[:cut]):
        raise SystemExit(f"{name}: no MixMonitorStart before its end")
    return Template(name, [wire(ev) for ev in events], cut)


def distinct(block: bytes, copy: int) -> bytes:
    """The ids ``rewrite`` leaves alone, made the copy's own."""
    block = _CHANNEL_SEQ.sub(lambda m: b"-%08x" % ((copy << 12) + int(m[1], 16)), block)
    block = _UUID_HEAD.sub(b"%08x" % copy, block)
    return _REC_TOKEN.sub(b"%020x" % copy, block)


@dataclass
class Calls:
    """Copies of templates: their live parts and their ends, as wire blocks."""

    live: list[bytes] = field(default_factory=list)
    ends: list[bytes] = field(default_factory=list)
    count: int = 0


class Copier:
    """Distinct copies: ``rewrite``'s repetitions (a template's n-th copy is its n-th
    repetition, Uniqueids shifted by n * 10,000,000) plus a copy number for the rest."""

    def __init__(self) -> None:
        self._reps: dict[str, int] = {}  # template name -> repetitions made so far
        self._copies = 0

    def calls(self, templates: list[Template], n: int) -> Calls:
        """``n`` calls, round robin over ``templates``."""
        out = Calls(count=n)
        per = [len(range(i, n, len(templates))) for i in range(len(templates))]
        made = [self._repeat(t, m) for t, m in zip(templates, per, strict=True)]
        for i in range(n):
            t, k = templates[i % len(templates)], i // len(templates)
            blocks = made[i % len(templates)][k * len(t.blocks):(k + 1) * len(t.blocks)]
            blocks = [distinct(b, self._copies) for b in blocks]
            self._copies += 1
            out.live += blocks[: t.cut]
            out.ends += blocks[t.cut:]
        return out

    def _repeat(self, t: Template, m: int) -> list[bytes]:
        done = self._reps.get(t.name, 0)
        self._reps[t.name] = done + m
        return rewrite(t.blocks, done + m)[done * len(t.blocks):]


@dataclass
class Phases:
    warmup: Calls
    plain: Calls
    recorded: Calls


def phases(calls: int, recorded: int) -> Phases:
    plain_t = [template(n, False) for n in PLAIN]
    rec_t = [template(n, True) for n in RECORDED]
    copier = Copier()
    warm = copier.calls(plain_t, WARMUP * len(plain_t))
    warm_rec = copier.calls(rec_t, WARMUP * len(rec_t))
    warm.live += warm_rec.live
    warm.ends += warm_rec.ends
    warm.count += warm_rec.count
    return Phases(warm, copier.calls(plain_t, calls), copier.calls(rec_t, recorded))


async def until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.perf_counter() + timeout
    while not pred():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def _malloc_trim() -> None:
    """glibc's ``malloc_trim(0)``: the heap gives freed memory back (no-op elsewhere)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def rss_kib() -> int:
    """Resident set size now (not the peak), KiB."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() // 1024


#: Not the bridge's: the bench's own blocks and tracemalloc's bookkeeping.
_NOT_THE_BRIDGE = [tracemalloc.Filter(False, tracemalloc.__file__),
                   tracemalloc.Filter(False, str(Path(__file__).parent / "*"))]


@dataclass
class Mark:
    """The process after a phase."""

    name: str
    calls: int  # live calls in the tracker
    channels: int  # live channels in the tracker
    recording: int  # live channels the tracker has a running MixMonitor on
    rss_kib: int
    snapshot: tracemalloc.Snapshot | None

    def traced(self) -> int:
        if self.snapshot is None:
            return 0
        return sum(s.size for s in self.snapshot.statistics("filename"))


class Run:
    """The bridge on a replay server; ``play`` one phase, ``mark`` the process."""

    def __init__(self, bridge: Services, server: ReplayServer, mode: str) -> None:
        self.bridge, self.server, self.mode = bridge, server, mode
        self.marks: list[Mark] = []

    async def play(self, blocks: list[bytes]) -> None:
        tracker = self.bridge.link.tracker
        e0 = tracker.events
        self.server.play(blocks)
        await until(lambda: tracker.events - e0 >= len(blocks), 300, "the phase")
        await asyncio.to_thread(self.server.sent)
        await asyncio.sleep(SETTLE)

    def mark(self, name: str) -> Mark:
        gc.collect()
        snap = None
        if self.mode == "trimmed":
            _malloc_trim()
        if self.mode == "traced":
            snap = tracemalloc.take_snapshot().filter_traces(_NOT_THE_BRIDGE)
        tracker = self.bridge.link.tracker
        recording = sum(ch.recording is not None for ch in tracker.channels.values())
        m = Mark(name, len(tracker.calls), len(tracker.channels), recording, rss_kib(), snap)
        self.marks.append(m)
        return m


def replay_ami(settings: Settings) -> AmiClient:
    s = settings.ami  # as bench/ingest_path.py's full path: reconnect at once
    # A snapshot holds the event loop for a while: no Ping may time out meanwhile.
    return AmiClient(s.host, s.port, s.username, "x", ping_interval=s.ping_interval,
                     ping_timeout=600.0, action_timeout=s.action_timeout,
                     connect_timeout=s.connect_timeout, backoff_base=0.01, backoff_cap=0.1)


async def one_pass(ph: Phases, tmp: Path, mode: str) -> list[Mark]:
    """One bridge, the four phases; a Mark after the start and after each phase.
    ``mode``: "rss" (RSS as it is), "trimmed" (RSS after ``malloc_trim(0)``: what the
    heap keeps of freed memory left out), "traced" (tracemalloc)."""
    db = tmp / f"bridge-{mode}.sqlite3"
    directory = Directory.open(db)
    directory.load_toml(DIRECTORY)
    server = await asyncio.to_thread(ReplayServer, [])
    settings = Settings(ami={"port": server.port, "secret": "x", "action_timeout": 10.0},
                        database={"url": f"sqlite:///{db}"},
                        recordings={"monitor_dir": str(tmp / "monitor")})
    if mode == "traced":
        tracemalloc.start()
    try:
        server.accept()
        run = Run(Services(settings, directory, ami=replay_ami(settings)), server, mode)
        try:
            await run.bridge.start()
            await until(lambda: run.bridge.link.ready, 30, "the bridge on the replay")
            run.mark("started")
            await run.play(ph.warmup.live + ph.warmup.ends)
            run.mark("warm")
            await run.play(ph.plain.live)
            run.mark("plain")
            await run.play(ph.recorded.live)
            run.mark("recorded")
            await run.play(ph.plain.ends + ph.recorded.ends)
            run.mark("hung up")
        finally:
            await run.bridge.close()
            directory.close()
            server.close_conn()
    finally:
        tracemalloc.stop()
        await asyncio.to_thread(server.stop)
    return run.marks


def sites(after: Mark, before: Mark, key: str, top: int) -> list[dict[str, Any]]:
    """The ``top`` sites (by file or line) that grew most from ``before`` to ``after``."""
    assert after.snapshot is not None and before.snapshot is not None
    stats = after.snapshot.compare_to(before.snapshot, key)
    root = str(Path(__file__).resolve().parent.parent) + "/"
    out = []
    for s in sorted(stats, key=lambda s: -s.size_diff)[:top]:
        frame = s.traceback[0]
        where = frame.filename.removeprefix(root)
        if "/site-packages/" in where:
            where = where.split("/site-packages/", 1)[1]
        elif "/lib/python" in where:
            where = "stdlib/" + where.split("/lib/python", 1)[1].split("/", 1)[1]
        if key == "lineno":
            where += f":{frame.lineno}"
        out.append({"site": where, "bytes": s.size_diff, "blocks": s.count_diff})
    return out


def phase(passes: dict[str, list[Mark]], i: int, j: int, calls: int) -> dict[str, Any]:
    """From mark ``j`` to mark ``i`` (of each pass), per one of ``calls``."""
    after, before = passes["traced"][i], passes["traced"][j]
    grew = after.traced() - before.traced()
    channels = after.channels - before.channels
    out = {
        "calls": calls,
        "live_calls_added": after.calls - before.calls,
        "live_channels_added": channels,
        "recording_channels_added": after.recording - before.recording,
        "bytes": grew,
        "bytes_per_call": grew / calls,
        "bytes_per_channel": grew / channels if channels else None,
    }
    for mode in ("rss", "trimmed"):
        kib = (passes[mode][j].rss_kib, passes[mode][i].rss_kib)
        out[f"{mode}_kib"] = kib
        out[f"{mode}_bytes_per_call"] = (kib[1] - kib[0]) * 1024 / calls
    out["by_file"] = sites(after, before, "filename", 10)
    out["by_line"] = sites(after, before, "lineno", 10)
    return out


async def measure(calls: int, recorded: int) -> dict[str, Any]:
    ph = await asyncio.to_thread(phases, calls, recorded)
    with tempfile.TemporaryDirectory(prefix="call-memory-") as tmp:
        # RSS first, untraced, in a fresh process's allocator; then tracemalloc.
        passes = {mode: await one_pass(ph, Path(tmp), mode)
                  for mode in ("rss", "trimmed", "traced")}
    ended = calls + recorded
    res: dict[str, Any] = {
        "events_per_call": {"plain": len(ph.plain.live) / max(calls, 1),
                            "recorded": len(ph.recorded.live) / max(recorded, 1)},
        "templates": {"plain": list(PLAIN), "recorded": list(RECORDED)},
        "warmup_calls": ph.warmup.count,
        "plain": phase(passes, 2, 1, calls),
        "recorded": phase(passes, 3, 2, recorded) if recorded else None,
        "after_hangup": phase(passes, 4, 1, ended),
    }
    res["after_hangup"]["note"] = "per ended call: what the bridge still holds of it"
    return res


def show(res: dict[str, Any]) -> None:
    print(f"warm-up {res['warmup_calls']} calls set up and hung up; then (tracemalloc, "
          f"the bridge's allocations only; RSS from untraced passes):")
    for key, label in (("plain", "live call"), ("recorded", "live recorded call"),
                       ("after_hangup", "ended call, still held")):
        p = res[key]
        if p is None:
            continue
        ch = p["bytes_per_channel"]
        print(f"\n{p['calls']:,} x {label}: {p['bytes_per_call'] / 1024:,.2f} KiB each"
              + (f", {ch:,.0f} B per channel" if ch else "")
              + f" (tracker: +{p['live_calls_added']} calls, +{p['live_channels_added']} "
              f"channels, +{p['recording_channels_added']} recording);"
              f"\n  RSS {p['rss_kib'][0]:,} -> {p['rss_kib'][1]:,} KiB, "
              f"{p['rss_bytes_per_call'] / 1024:,.2f} KiB each; after malloc_trim(0) "
              f"{p['trimmed_kib'][0]:,} -> {p['trimmed_kib'][1]:,} KiB, "
              f"{p['trimmed_bytes_per_call'] / 1024:,.2f} KiB each")
        for kind in ("by_file", "by_line"):
            print(f"  top sites {kind.replace('_', ' ')}:")
            for s in p[kind]:
                print(f"    {s['bytes'] / p['calls']:>9,.0f} B/call {s['blocks']:>+8,} blocks"
                      f"  {s['site']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=1000, help="plain live calls")
    ap.add_argument("--recorded", type=int, help="recorded live calls (default calls/4)")
    ap.add_argument("--json", help="write the results to this file")
    args = ap.parse_args()
    recorded = args.calls // 4 if args.recorded is None else args.recorded
    if args.calls < 1 or recorded < 0:
        ap.error("--calls >= 1, --recorded >= 0")
    logging.basicConfig(level=logging.WARNING)
    res = asyncio.run(measure(args.calls, recorded))
    show(res)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
