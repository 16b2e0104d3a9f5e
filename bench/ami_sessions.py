"""Issue 15: StartRecording p99 under concurrency with 0 and N AMI action sessions, in
one run (same Asterisk, same calls, same machine load), against the minimal client
sending the bridge's actions and ARI.

    .venv/bin/python -m bench.ami_sessions                    # 0 vs 2 sessions
    .venv/bin/python -m bench.ami_sessions --sessions 0,1,2,4 --rounds 2

For each round and each ``[ami] action_sessions`` value, the bridge subprocess is
restarted with that value, then ``--clients`` concurrent clients on ``--calls`` calls
time ``--samples`` StartRecordings (each stopped after it is measured; a call starts at
most once per second), as bench/run.py's concurrency phase; the minimal client
("actions": Setvar + MixMonitor pipelined on one AMI session, until MixMonitorStart)
and ARI are measured in the same round. Prints p50/p99 and the ratios; writes JSON if
``--out`` is given. Read ratios, not times: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from bench.run import Lab, Options, Recorder, concurrent


async def measure(sessions: list[int] | list[str], rounds: int, calls_n: int, clients: int,
                  samples: int, setting: str = "PBX_BRIDGE_AMI__ACTION_SESSIONS",
                  ) -> dict[str, Any]:
    """``setting``: the bridge's setting the values of ``sessions`` go to."""
    opts = Options(clients=clients, clients_calls=calls_n, clients_samples=samples)
    lab = Lab(opts, None)
    out: dict[str, Any] = {"sessions": sessions, "calls": calls_n, "clients": clients,
                           "samples": samples, "rounds": []}
    try:
        await lab.start()
        rec = Recorder(lab)
        calls = await lab.ensure_calls(calls_n)
        for r in range(rounds):
            row: dict[str, Any] = {}
            for method in ("actions", "ari"):
                opts.log(f"round {r + 1}: {method}")
                row[method] = (await concurrent(lab, calls, clients, samples=samples,
                                                method=method, rec=rec))["latency"]
            for n in sessions:
                await lab.stop_bridge()
                lab.bridge_settings = {setting: str(n)}
                await lab.start_bridge()
                await lab.wait_bridge_sees(len(lab.calls))
                # Warm-up: connections and code paths, not timed.
                await concurrent(lab, calls, clients, samples=clients, method="bridge", rec=rec)
                opts.log(f"round {r + 1}: bridge, {setting}={n}")
                res = await concurrent(lab, calls, clients, samples=samples, method="bridge",
                                       rec=rec)
                row[f"bridge_{n}"] = res["latency"] | {"errors": res["errors"]}
                lab.clean_files()
            out["rounds"].append(row)
            print_round(r, row, sessions)
        out["stale_answers"] = rec.stale
    finally:
        await lab.close()
    return out


def print_round(r: int, row: dict[str, Any], sessions: list[int] | list[str]) -> None:
    act, ari = row["actions"], row["ari"]
    print(f"round {r + 1}                          p50 ms   p99 ms   p99/actions  p99/ARI")
    for key in ["actions", "ari", *(f"bridge_{n}" for n in sessions)]:
        st = row[key]
        print(f"  {key:<30}{st['p50']:>7.2f}  {st['p99']:>7.2f}  {st['p99'] / act['p99']:>9.2f}x"
              f"  {st['p99'] / ari['p99']:>6.2f}x")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", default="0,2", help="action_sessions values, comma-separated")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--write-delays", help="instead of --sessions: [database] write_delay "
                    "values, comma-separated (issue 15: background writes yield to requests)")
    args = ap.parse_args(argv)
    if args.write_delays:
        values: list[int] | list[str] = [str(float(x)) for x in args.write_delays.split(",")]
        setting = "PBX_BRIDGE_DATABASE__WRITE_DELAY"
    else:
        values, setting = [int(x) for x in args.sessions.split(",")], \
            "PBX_BRIDGE_AMI__ACTION_SESSIONS"
    result = asyncio.run(measure(values, args.rounds, args.calls, args.clients,
                                 args.samples, setting))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
