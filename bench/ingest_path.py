"""The ingest phase of `make bench` without an Asterisk: the captured transcripts
(tests/fixtures/*.jsonl) blasted by the stand-in AMI server (bench/replay.py) through

1. the socket, split on blank lines only (the floor),
2. the socket and AmiParser,
3. the full path: AmiClient -> PbxLink -> tracker -> every feature of `Services`,
   with the demo directory (config/directory.example.toml: the transcripts' phones).

    .venv/bin/python -m bench.ingest_path [--events N] [--rounds R] [--json OUT]
                                          [--before REF]

``--before REF``: the same measures on REF's ``pbx_bridge`` (``git archive``), each round
one child run per side, alternated, so both see the same machine. Same-run ratios only:
the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bridge_replay import DIRECTORY, blocks, drive
from bench.replay import ReplayServer, rewrite
from pbx_bridge.config import Settings
from pbx_bridge.directory.store import Directory
from pbx_bridge.pbx.framing import AmiParser

__all__ = ["blocks", "measure"]  # blocks: also tests/unit/test_bench_replay.py's

REPO = Path(__file__).resolve().parent.parent

READ_TIMEOUT = 60.0  # a stalled stream fails the run instead of hanging it


async def raw_reader(server: ReplayServer, parse: bool) -> float:
    server.accept()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    await reader.readline()
    writer.write(b"Action: Login\r\nActionID: 1\r\nUsername: x\r\nSecret: y\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    parser = AmiParser(expect_banner=False)
    seen, tail, n = 0, b"", server.events
    server.go()
    t0 = time.perf_counter()
    while seen < n:
        data = await asyncio.wait_for(reader.read(65536), READ_TIMEOUT)
        if not data:
            raise RuntimeError(f"the replay ended after {seen} of {n} events")
        if parse:
            seen += len(parser.feed(data))
        else:
            seen += (tail + data).count(b"\r\n\r\n")
            tail = data[-3:]
    t = time.perf_counter() - t0
    await asyncio.to_thread(server.sent)
    writer.close()
    server.close_conn()
    return t


async def full_path(server: ReplayServer, db: Path) -> float:
    settings = Settings(ami={"port": server.port, "secret": "x", "action_timeout": 10.0},
                        database={"url": f"sqlite:///{db}"})
    return (await drive(settings, db, {settings.nodes()[0].name: server})).seconds


async def measure(target: int, rounds: int) -> dict[str, Any]:
    base = blocks()
    reps = max(1, math.ceil(target / len(base)))
    server = await asyncio.to_thread(ReplayServer, rewrite(base, reps))
    n = server.events
    best = {"floor": math.inf, "parser": math.inf, "bridge": math.inf}
    with tempfile.TemporaryDirectory(prefix="ingest-path-") as tmp:
        db = Path(tmp) / "directory.sqlite3"
        directory = Directory.open(db)
        directory.load_toml(DIRECTORY)
        directory.close()
        try:
            for _ in range(rounds):
                best["floor"] = min(best["floor"], await raw_reader(server, False))
                best["parser"] = min(best["parser"], await raw_reader(server, True))
                best["bridge"] = min(best["bridge"], await full_path(server, db))
        finally:
            await asyncio.to_thread(server.stop)
    res: dict[str, Any] = {"events": n, "bytes": server.bytes, "rounds": rounds}
    res.update({f"{k}_events_per_s": n / v for k, v in best.items()})
    return res


def child_round(tree: Path, events: int) -> dict[str, Any]:
    """One round in a child process whose ``pbx_bridge`` is the one under ``tree``."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{REPO}"}
        subprocess.run([sys.executable, "-m", "bench.ingest_path", "--events", str(events),
                        "--rounds", "1", "--json", out.name, "--quiet"],
                       cwd=tree, env=env, check=True, timeout=900)
        result: dict[str, Any] = json.loads(Path(out.name).read_text())
        return result


def compare(ref: str, events: int, rounds: int) -> dict[str, dict[str, Any]]:
    """Best of ``rounds`` for REF's package and this tree's, rounds alternated."""
    with tempfile.TemporaryDirectory(prefix="ingest-before-") as tmp:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "pbx_bridge"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        trees = {"before": Path(tmp), "after": REPO}
        best: dict[str, dict[str, Any]] = {}
        for _ in range(rounds):
            for side, tree in trees.items():
                res = child_round(tree, events)
                prev = best.setdefault(side, res)
                for k, v in res.items():
                    if k.endswith("_per_s"):
                        prev[k] = max(prev[k], v)
        for res in best.values():
            res["rounds"] = rounds
        return best


def show(title: str, res: dict[str, Any]) -> None:
    fl = res["floor_events_per_s"]
    print(f"{title}{res['events']:,} events, {res['bytes'] / res['events']:.0f} bytes each, "
          f"best of {res['rounds']}")
    for key, label in (("floor", "socket + split on blank lines"),
                       ("parser", "socket + AmiParser"),
                       ("bridge", "full path: AmiClient -> link -> tracker -> features")):
        v = res[f"{key}_events_per_s"]
        print(f"  {label:<54}{v:>10,.0f}/s {v / fl:>7.3f}x floor")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="write the results to this file")
    ap.add_argument("--before", metavar="REF", help="also measure REF's pbx_bridge, same run")
    ap.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    out: dict[str, Any]
    if args.before:
        out = compare(args.before, args.events, args.rounds)
        show(f"before ({args.before}): ", out["before"])
        show("after (this tree): ", out["after"])
        for key in ("parser", "bridge"):
            k = f"{key}_events_per_s"
            print(f"  {key} after / before: {out['after'][k] / out['before'][k]:.2f}x")
    else:
        out = asyncio.run(measure(args.events, args.rounds))
        if not args.quiet:
            show("", out)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
