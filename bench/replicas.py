"""StartRecording/StopRecording pairs with 1 and 2 replicas on one PostgreSQL (issue 16),
same run, and PostgreSQL's load per pair:

    .venv/bin/python -m bench.replicas                    # --clients 8 --seconds 10 --rounds 2

On the sandbox Asterisk (PBX_BRIDGE_SANDBOX_NAME / _PORT_OFFSET) with bench/run.py's lab
(its bench calls on EXT; its own SQLite bridge is stopped once the calls are up), a
PostgreSQL server of this bench's own (devtools/postgres.py, durability on), one
database, `pbx-bridge db upgrade`, the bench directory and a token there. Replica A and
B are `pbx-bridge serve` processes on it, each with its own AMI link.

A phase: ``--clients`` loops for ``--seconds``, each sending a StartRecording then a
StopRecording (both must answer 200) on a call of the shared pool, through A only (one
replica: B is stopped) or through A and B in turn (two replicas). A call is started at
most once a second (a recording's file name has the second in it: bench/run.py's Pacer).
Phases alternate 1, 2, 1, 2... (``--rounds``) so the machine's noise hits both; read the
ratios of one run. Per phase: pairs/s, the replicas' CPU per pair, and PostgreSQL's per
pair: committed transactions, rows inserted/updated/deleted/returned, server CPU.
Asterisk's MixMonitorStart count must grow by the pairs made.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from bench import process
from bench.run import (
    DIRECTORY_TOML,
    EXT,
    START,
    STOP,
    USER_ID,
    BenchCall,
    Lab,
    Options,
    cpu_seconds,
    free_port,
)
from devtools.postgres import PostgresServer, find_bin_dir
from pbx_bridge.directory.store import Directory

DB = "replicas"
PACE = 1.0  # seconds between two starts of one call


class Replica:
    def __init__(self, lab: Lab, name: str, url: str) -> None:
        self.lab, self.name, self.url = lab, name, url
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        env = self.lab.bridge_env()
        env.update(PBX_BRIDGE_HTTP__PORT=str(self.port), PBX_BRIDGE_HTTP__PUBLIC_BASE_URL=self.base,
                   PBX_BRIDGE_DATABASE__URL=self.url)
        with open(self.lab.tmp / f"replica-{self.name}.log", "ab") as logf:
            self.proc = subprocess.Popen([sys.executable, "-m", "pbx_bridge.cli", "serve"],
                                         env=env, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT, cwd=self.lab.tmp)
        assert self.lab.http is not None
        await process.until_ready(self.lab.http, self.base, self.proc,
                                  lambda why: f"replica {self.name} {why}")

    async def stop(self) -> None:
        await process.stop(self.proc)
        self.proc = None

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid) if self.proc is not None else 0.0


def prepare(url: str, cwd: Path) -> str:
    """`pbx-bridge db upgrade` (as an operator does), the bench directory, a token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    env["PBX_BRIDGE_DATABASE__URL"] = url
    subprocess.run([sys.executable, "-m", "pbx_bridge.cli", "db", "upgrade"], env=env,
                   check=True, capture_output=True, cwd=cwd, timeout=120)
    directory = Directory.open(url)
    try:
        directory.load_toml(DIRECTORY_TOML)
        client_id, _ = directory.create_app(USER_ID, "bench replicas")
        return directory.issue_token(client_id, ttl=86400)[0]
    finally:
        directory.close()


async def _put(http: aiohttp.ClientSession, r: Replica, call: BenchCall, body: str,
               headers: dict[str, str]) -> None:
    url = f"{r.base}/uapi/phoneCalls/@me/{EXT}/{call.id}"
    async with http.put(url, data=body, headers=headers) as resp:
        if resp.status != 200:
            raise RuntimeError(f"{r.name}: {body} -> {resp.status}: {await resp.text()}")
        await resp.read()


async def pairs(lab: Lab, replicas: list[Replica], calls: list[BenchCall], clients: int,
                seconds: float, headers: dict[str, str]) -> int:
    """Start/stop pairs made by ``clients`` loops in ``seconds``, replicas in turn."""
    assert lab.http is not None
    pool = collections.deque((0.0, c) for c in calls)  # (last start, call), oldest first
    made = 0
    deadline = time.monotonic() + seconds

    async def client(k: int) -> None:
        nonlocal made
        turn = k
        while time.monotonic() < deadline:
            last, call = pool.popleft()
            await asyncio.sleep(max(0.0, last + PACE - time.monotonic()))
            r = replicas[turn % len(replicas)]
            turn += 1
            started = time.monotonic()
            await _put(lab.http, r, call, START, headers)  # type: ignore[arg-type]
            await _put(lab.http, r, call, STOP, headers)  # type: ignore[arg-type]
            made += 1
            pool.append((started, call))

    await asyncio.gather(*(client(k) for k in range(clients)))
    return made


async def phase(lab: Lab, pg: PostgresServer, replicas: list[Replica], calls: list[BenchCall],
                args: argparse.Namespace, headers: dict[str, str]) -> dict[str, float]:
    assert lab.ami is not None
    starts = sum(lab.ami.count("MixMonitorStart", c.uid) for c in calls)
    await asyncio.sleep(1.2)  # the last phase's statistics reported
    before = await asyncio.to_thread(pg.load, DB)
    cpu0 = [r.cpu() for r in replicas]
    t0 = time.monotonic()
    n = await pairs(lab, replicas, calls, args.clients, args.seconds, headers)
    took = time.monotonic() - t0
    cpu1 = [r.cpu() for r in replicas]
    await asyncio.sleep(1.2)
    after = await asyncio.to_thread(pg.load, DB)
    made = sum(lab.ami.count("MixMonitorStart", c.uid) for c in calls) - starts
    if made < n:
        raise RuntimeError(f"{n} pairs answered, Asterisk started {made} MixMonitors")
    per = {k: (after[k] - before[k]) / n for k in after}
    per["replicas_cpu_ms"] = 1000 * sum(b - a for a, b in zip(cpu0, cpu1, strict=True)) / n
    per["pairs_per_s"] = n / took
    per["pairs"] = n
    return per


len_calls = [0]


def show(rows: list[tuple[int, dict[str, float]]]) -> None:
    print("\nreplicas  pairs  pairs/s  bridge CPU ms/pair  PG CPU ms/pair  commits/pair  "
          "ins/upd/del per pair  returned+fetched/pair")
    for k, r in rows:
        print(f"{k:>8}  {r['pairs']:>5.0f}  {r['pairs_per_s']:>7.1f}  "
              f"{r['replicas_cpu_ms']:>18.2f}  {1000 * r['cpu_seconds']:>14.2f}  "
              f"{r['xact_commit']:>12.1f}  {r['tup_inserted']:>5.1f}/{r['tup_updated']:.1f}/"
              f"{r['tup_deleted']:.1f}  {r['tup_returned'] + r['tup_fetched']:>10.0f}")
    print(f"(the pool allows {len_calls[0] / PACE:.0f} pairs/s at most: "
          "a call starts once a second)")
    for k in (1, 2):
        mine = [r["pairs_per_s"] for n, r in rows if n == k]
        print(f"{k} replica(s): mean {sum(mine) / len(mine):.1f} pairs/s over {len(mine)} phases")


async def main_async(args: argparse.Namespace) -> int:
    lab = Lab(Options(out=None), None)
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise SystemExit("PostgreSQL's initdb/pg_ctl not found: install Debian's postgresql")
    pg = PostgresServer(bin_dir, durable=True)
    replicas: list[Replica] = []
    try:
        await asyncio.to_thread(pg.start)
        url = await asyncio.to_thread(pg.create_database, DB)
        await lab.start()
        token = await asyncio.to_thread(prepare, url, lab.tmp)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        calls = await lab.ensure_calls(args.calls)
        len_calls[0] = len(calls)
        await lab.stop_bridge()  # only the replicas follow the calls from here
        replicas = [Replica(lab, "A", url), Replica(lab, "B", url)]
        await replicas[0].start()
        rows: list[tuple[int, dict[str, float]]] = []
        for _ in range(args.rounds):
            for k in (1, 2):
                if k == 2:
                    await replicas[1].start()
                rows.append((k, await phase(lab, pg, replicas[:k], calls, args, headers)))
                if k == 2:
                    await replicas[1].stop()
                lab.clean_files()
        show(rows)
        return 0
    finally:
        for r in replicas:
            await r.stop()
        await lab.close()
        await asyncio.to_thread(pg.stop)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=60, help="live bench calls in the pool")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0, help="per phase")
    ap.add_argument("--rounds", type=int, default=2, help="1-replica/2-replica phase pairs")
    return asyncio.run(main_async(ap.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
