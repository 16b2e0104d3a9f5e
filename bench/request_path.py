"""The bridge's own cost per request (issue 15), same run, interleaved:

    .venv/bin/python -m bench.request_path                       # this code only
    .venv/bin/python -m bench.request_path --before main         # + the code of a git ref
    .venv/bin/python -m bench.request_path --profile 20          # py-spy the bridge (collapsed)

On the sandbox Asterisk (PBX_BRIDGE_SANDBOX_NAME / _PORT_OFFSET, as bench/run.py), with
bench/run.py's lab (bench calls, directory, token). For each N of ``--calls``:

- StartRecording: ``PUT`` -> 200 through each bridge, against the minimal AMI client
  sending the bridge's actions (``Setvar PBX_REC`` + ``MixMonitor``, pipelined, until
  ``MixMonitorStart``: bench/run.py's "actions" row). Each method records its own calls
  (two bridges on one call would each have to catch up with the other's recording), a
  call starts once per second at most, methods rotate within a round.
- List at 1 call (only when N = 1): ``GET`` list and ``/healthz`` of each bridge, ARI
  ``GET /channels`` and ``/asterisk/ping``.

``--before REF`` runs a second ``pbx-bridge serve`` from ``git archive REF`` (PYTHONPATH
put before the editable install) on the same Asterisk and calls, so the machine's noise
hits both. Read the ratios of one run, never times across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import process
from bench.run import (
    EXT,
    REPO,
    START,
    STOP,
    BenchCall,
    CpuWatch,
    Lab,
    Options,
    Pacer,
    Recorder,
    free_port,
    stats,
)


class Bridge:
    """One ``pbx-bridge serve`` of the lab, from this tree or from an archived ref."""

    def __init__(self, lab: Lab, name: str, source: Path | None) -> None:
        self.lab, self.name, self.source = lab, name, source
        self.port = lab.http_port if source is None else free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.lab.proc if self.source is None else self._proc

    async def start(self) -> None:
        if self.source is None:
            return  # the lab's own
        env = self.lab.bridge_env()
        # A database of its own: two bridges writing one SQLite file would wait on each
        # other's write lock, which neither does alone.
        db = self.source.parent / f"{self.name}.sqlite3"
        shutil.copyfile(self.lab.db_path, db)
        env.update(PBX_BRIDGE_HTTP__PORT=str(self.port), PBX_BRIDGE_HTTP__PUBLIC_BASE_URL=self.base,
                   PBX_BRIDGE_DATABASE__URL=f"sqlite:///{db}", PYTHONPATH=str(self.source))
        logf = open(self.lab.tmp / f"bridge-{self.name}.log", "ab")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "pbx_bridge.cli", "serve"], env=env,
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, cwd=self.lab.tmp,
        )
        logf.close()
        assert self.lab.http is not None
        await process.until_ready(self.lab.http, self.base, self._proc,
                                  lambda why: f"bridge {self.name} {why}")

    async def stop(self) -> None:
        if self.source is not None:
            await process.stop(self.proc)

    async def put(self, call: BenchCall, body: str) -> float:
        assert self.lab.http is not None
        url = f"{self.base}/uapi/phoneCalls/@me/{EXT}/{call.id}"
        t0 = time.perf_counter()
        async with self.lab.http.put(url, data=body, headers=self.lab.headers) as r:
            await r.read()
            t = time.perf_counter() - t0
            if r.status != 200:
                raise RuntimeError(f"{self.name}: PUT {body} -> {r.status}: {await r.text()}")
        return t

    async def get(self, path: str, **params: str) -> float:
        assert self.lab.http is not None
        t0 = time.perf_counter()
        async with self.lab.http.get(self.base + path, params=params,
                                     headers=self.lab.headers) as r:
            await r.read()
            t = time.perf_counter() - t0
            if r.status != 200:
                raise RuntimeError(f"{self.name}: GET {path} -> {r.status}")
        return t

    async def cycle(self, call: BenchCall) -> float:
        """A timed start, then a stop; checks Asterisk really started a MixMonitor."""
        ami = self.lab.ami
        assert ami is not None
        starts = ami.count("MixMonitorStart", call.uid)
        stops = ami.count("MixMonitorStop", call.uid)
        t = await self.put(call, START)
        await self.put(call, STOP)
        await ami.wait_count("MixMonitorStop", call.uid, stops + 1, 10)
        if ami.count("MixMonitorStart", call.uid) <= starts:
            raise RuntimeError(f"{self.name} answered a start that started nothing")
        return t


def archive(ref: str, into: Path) -> Path:
    """The tree of ``ref`` (pbx_bridge/ only matters) unpacked into ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    tar = subprocess.run(["git", "-C", str(REPO), "archive", ref, "pbx_bridge"],
                         check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=tar, check=True)
    return into


async def start_latency(lab: Lab, bridges: list[Bridge], calls: list[BenchCall],
                        rounds: int) -> dict[str, Any]:
    names = [b.name for b in bridges] + ["actions"]
    share = {m: calls[k::len(names)] for k, m in enumerate(names)}
    pacer = Pacer()
    rec = Recorder(lab)
    rec.pacer = pacer
    out: dict[str, list[float]] = {m: [] for m in names}
    pos = dict.fromkeys(names, 0)
    watch = CpuWatch(lab)
    for r in range(rounds):
        k = r % len(names)
        for m in names[k:] + names[:k]:
            pos[m], call = await pacer.pick(share[m], pos[m])
            pos[m] += 1
            if m == "actions":
                out[m].append(await rec.cycle("actions", call, checked=False))
            else:
                out[m].append(await next(b for b in bridges if b.name == m).cycle(call))
            pacer.mark(call)
    res: dict[str, Any] = {m: stats(v) for m, v in out.items()}
    res["cpu"] = watch.done()
    return res


async def list_latency(lab: Lab, bridges: list[Bridge], rounds: int) -> dict[str, Any]:
    assert lab.ari is not None and lab.ari.http is not None
    ari = lab.ari
    out: dict[str, list[float]] = {"ari_channels": [], "ari_ping": []}
    for b in bridges:
        out[f"{b.name}_list"], out[f"{b.name}_healthz"] = [], []

    async def ari_get(path: str) -> float:
        assert ari.http is not None
        t0 = time.perf_counter()
        async with ari.http.get(ari.base + path) as r:
            await r.read()
        return time.perf_counter() - t0

    for _ in range(rounds):
        for b in bridges:
            out[f"{b.name}_healthz"].append(await b.get("/healthz"))
            out[f"{b.name}_list"].append(
                await b.get(f"/uapi/phoneCalls/@me/{EXT}", count="4999"))
        out["ari_ping"].append(await ari_get("/asterisk/ping"))
        out["ari_channels"].append(await ari_get("/channels"))
    return {k: stats(v) for k, v in out.items()}


async def profile(lab: Lab, bridge: Bridge, calls: list[BenchCall], seconds: int,
                  out: Path) -> None:
    """py-spy the bridge (collapsed stacks, idle frames dropped) under Start/Stop loops."""
    assert bridge.proc is not None
    spy = str(Path(sys.executable).parent / "py-spy")
    proc = subprocess.Popen(
        [spy, "record", "--pid", str(bridge.proc.pid), "--duration", str(seconds),
         "--rate", "500", "--format", "raw", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    await asyncio.sleep(0.5)
    pacer = Pacer()
    i = 0
    while proc.poll() is None:
        i, call = await pacer.pick(calls, i)
        i += 1
        await bridge.cycle(call)
        pacer.mark(call)
    lab.log(f"profile: {out}")


def show(n: int, res: dict[str, Any], names: list[str]) -> None:
    act = res["actions"]["p50"]
    print(f"\nStartRecording, {n} live calls (p50 / p90 ms; minus the actions' p50):")
    for m in [*names, "actions"]:
        s = res[m]
        print(f"  {m:10} {s['p50']:7.2f} {s['p90']:7.2f}  {s['p50'] - act:+.2f}  (n={s['n']})")
    print(f"  machine: {res['cpu']}")


def show_list(res: dict[str, Any], names: list[str]) -> None:
    ari = res["ari_channels"]["p50"] - res["ari_ping"]["p50"]
    print("\nList at 1 call, p50 ms (list, healthz, list minus healthz):")
    for m in names:
        lst, hz = res[f"{m}_list"]["p50"], res[f"{m}_healthz"]["p50"]
        print(f"  {m:10} {lst:6.3f} {hz:6.3f} {lst - hz:+.3f}")
    print(f"  ARI        {res['ari_channels']['p50']:6.3f} {res['ari_ping']['p50']:6.3f} "
          f"{ari:+.3f}")


async def main_async(args: argparse.Namespace) -> int:
    opts = Options(out=None)
    lab = Lab(opts, None)
    tmp = Path(tempfile.mkdtemp(prefix="pbx-bridge-reqpath-"))
    bridges = [Bridge(lab, "bridge", None)]
    try:
        await lab.start()
        if args.before:
            # Both started the same way (a tree of their own, a database of their own):
            # the lab's bridge, started first with the bench's database, measured a few
            # tenths of a millisecond slower than an identical second one (A/A runs).
            current = tmp / "current"
            shutil.copytree(REPO / "pbx_bridge", current / "pbx_bridge")
            bridges = [Bridge(lab, "bridge", current),
                       Bridge(lab, "before", archive(args.before, tmp / "before"))]
            for b in bridges:
                await b.start()
        names = [b.name for b in bridges]
        for n in args.calls:
            if n == 1 and args.list_rounds and not args.profile:
                await lab.ensure_calls(1)  # the bench extension has exactly one call
                show_list(await list_latency(lab, bridges, args.list_rounds), names)
            live = max(n, len(names) + 1)  # each method on calls of its own
            calls = await lab.ensure_calls(live)
            if args.profile:
                await profile(lab, bridges[0], calls, args.profile, Path(args.profile_out))
                return 0
            show(live, await start_latency(lab, bridges, calls, args.rounds), names)
            lab.clean_files()
        return 0
    finally:
        for b in bridges:
            await b.stop()
        await lab.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", default="1,50,200",
                    type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--rounds", type=int, default=60, help="StartRecording rounds per N")
    ap.add_argument("--list-rounds", type=int, default=200)
    ap.add_argument("--before", help="a git ref: also run a bridge of that code")
    ap.add_argument("--profile", type=int, default=0, help="py-spy seconds (no measuring)")
    ap.add_argument("--profile-out", default=os.path.join(tempfile.gettempdir(),
                                                           "bridge-request-path.txt"))
    return asyncio.run(main_async(ap.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
