"""Issue 15: resync with N live calls (2N channels) against `CoreShowChannels` alone,
in one run, for this checkout and optionally a base commit (same Asterisk, same calls).

    .venv/bin/python -m bench.resync                        # 500 calls, this tree
    .venv/bin/python -m bench.resync --base main --rounds 5 # before/after, same run

bench/run.py's Lab starts the sandbox Asterisk and N Local calls (no bridge subprocess).
Two cases: the calls not recorded, then every call recorded as the bridge records (a
PBX_REC stamp and MixMonitor with its i(PBX_RECID) option, pipelined). For each case
and each tree, bench/resync_worker.py (an in-process bridge of that tree) cuts its AMI
link ``--rounds`` times and times AMI login -> ready; between trees the minimal client
(bench/rawami.py) times CoreShowChannels alone. Prints p50/max and their ratios to the
floor; ``--out`` writes JSON. Read ratios, not times: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.run import DEVICE, REPO, Lab, Options, stats
from pbx_bridge.recording.variables import MIXMONITOR_OPTIONS, REC_VAR

WORKER = Path(__file__).resolve().parent / "resync_worker.py"


class CallsOnly(Lab):
    """The Lab's Asterisk and calls; no bridge subprocess (the workers are the bridges)."""

    async def start_bridge(self) -> None:
        return None

    async def wait_bridge_sees(self, n: int) -> None:
        return None


def base_tree(ref: str, into: Path) -> Path:
    """``ref``'s files (git archive), for the worker's PYTHONPATH."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "pbx_bridge"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


async def record_all(lab: Lab) -> int:
    """Every call recorded as the bridge starts one; how many MixMonitors run."""
    assert lab.ami is not None
    ok = 0
    for i in range(0, len(lab.calls), 50):
        batch = lab.calls[i:i + 50]
        answers = await asyncio.gather(*(
            lab.ami.action(action, headers)
            for c in batch
            for action, headers in (
                ("Setvar", {"Channel": c.channel, "Variable": REC_VAR,
                            "Value": f"{time.time():.3f}|bench/resync-{c.uid}.wav"}),
                ("MixMonitor", {"Channel": c.channel, "File": f"bench/resync-{c.uid}.wav",
                                "Options": MIXMONITOR_OPTIONS}),
            )
        ))
        ok += sum(1 for r in answers[1::2] if r.get("MixMonitorID"))
    return ok


async def floor(lab: Lab, rounds: int) -> list[float]:
    assert lab.ami is not None
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        await lab.ami.list_action("CoreShowChannels")
        out.append(time.perf_counter() - t0)
    return out


async def worker(lab: Lab, tree: Path, args: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), json.dumps(args), env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await proc.communicate()
    if err:
        print(err.decode()[-1500:], file=sys.stderr)
    if proc.returncode:
        raise RuntimeError(f"worker ({tree}) failed: {err.decode()[-2000:]}")
    return json.loads(out.decode().strip().splitlines()[-1])


async def case(lab: Lab, trees: dict[str, Path], rounds: int, recorded: int,
               profile: str | None) -> dict[str, Any]:
    sb = lab.sandbox
    args = {"ami_port": sb.ami_port, "secret": sb.secrets.ami, "db_url": lab.db_url,
            "rounds": rounds, "device": DEVICE, "channels": 2 * len(lab.calls),
            "recorded_channels": recorded}
    floors: list[float] = await floor(lab, rounds)
    out: dict[str, Any] = {"recorded_channels": recorded}
    for name, tree in trees.items():
        prof = f"{profile}-{name}-{recorded}.prof" if profile else None
        res = await worker(lab, tree, {**args, "profile": prof})
        if res["phases_s"]:
            print(f"    {name} phases (s, summed): " + ", ".join(
                f"{k} {v:.3f}" for k, v in sorted(res["phases_s"].items(), key=lambda kv: -kv[1])))
        out[name] = stats(res["login_to_ready_s"]) | {"consistent": res["all_consistent"]}
        floors += await floor(lab, rounds)
    out["floor_coreshowchannels"] = stats(floors)
    return out


def show(res: dict[str, Any], trees: list[str]) -> None:
    fl = res["floor_coreshowchannels"]
    print(f"  recorded channels {res['recorded_channels']}: CoreShowChannels alone "
          f"p50 {fl['p50']:.0f} ms, max {fl['max']:.0f} ms")
    for name in trees:
        r = res[name]
        print(f"    {name:>5}: login -> ready p50 {r['p50']:.0f} ms "
              f"({r['p50'] / fl['p50']:.2f}x), max {r['max']:.0f} ms "
              f"({r['max'] / fl['max']:.2f}x), consistent {r['consistent']}")


async def measure(calls: int, rounds: int, base: str | None, profile: str | None,
                  ) -> dict[str, Any]:
    lab = CallsOnly(Options(), None)
    trees = {"head": REPO}
    with tempfile.TemporaryDirectory(prefix="bench-resync-") as tmp:
        if base:
            trees = {"base": base_tree(base, Path(tmp) / "base"), "head": REPO}
        out: dict[str, Any] = {"calls": calls, "channels": 2 * calls, "rounds": rounds,
                               "base": base, "cases": []}
        try:
            await lab.start()
            await lab.ensure_calls(calls)
            out["cases"].append(await case(lab, trees, rounds, 0, profile))
            show(out["cases"][-1], list(trees))
            recorded = await record_all(lab)
            out["cases"].append(await case(lab, trees, rounds, recorded, profile))
            show(out["cases"][-1], list(trees))
        finally:
            await lab.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.resync",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=500, help="live calls (2 channels each)")
    ap.add_argument("--rounds", type=int, default=5, help="link cuts per tree and case")
    ap.add_argument("--base", help="a git ref to time too (its pbx_bridge, same run)")
    ap.add_argument("--profile", help="cProfile each worker's cuts into <PREFIX>-*.prof")
    ap.add_argument("--out", type=Path, help="write the JSON here")
    args = ap.parse_args(argv)
    res = asyncio.run(measure(args.calls, args.rounds, args.base, args.profile))
    if args.out:
        args.out.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
