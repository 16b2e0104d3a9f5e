"""Webhooks under load, side by side with the same bridge without them (issue 12):
StartRecording through the API with no subscription, then with 1,000, on the same
sandbox Asterisk and `pbx-bridge serve` in the same run; and how soon the live receivers
get each event, with and without dead receivers among the subscriptions.

    .venv/bin/python -m bench.webhooks              # 1,000 subscriptions, 200 samples/phase
    .venv/bin/python -m bench.webhooks --quick      # a rough pass in seconds

The 1,000 subscriptions, as a VoipNow organization has them (Call Events are set per
extension): one on each of 990 other extensions of the bench organization (they get no
event here, but weigh on matching, the outbox's queries and the sender's poll), and ten
on the bench extension 0009*600 that every StartRecording here produces events for:
eight live receivers, one that accepts connections and never answers (each attempt
waits the whole `[events] timeout`) and one whose port refuses connections. Receivers
run in a process of their own (bench/webhook_receivers.py).

Phases, each `samples` StartRecording requests (timed: PUT -> 200), each followed by an
untimed StopRecording, paced one start per call and second over `calls` live calls:

1. ``none``: no subscription at all (the baseline);
2. ``live``: the 998 subscriptions whose receivers answer (the two dead ones inactive);
3. ``dead``: all 1,000, the two dead receivers active.

Delivery lag: for each ``recording.started`` a live receiver of the bench extension
takes, its arrival (receiver's clock) minus the moment the bench sent the StartRecording
that caused it (same machine): an upper bound of "event -> receipt" that includes the
API's own answer time. Nothing is asserted (tests/integration/test_bench_smoke.py checks
the results are well formed); figures go in docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.run import ADMIN_ID, DIRECTORY_TOML, EXT, USER_ID, BenchCall, Lab, Pacer, machine, stats
from bench.run import Options as RunOptions
from devtools.sandbox import Sandbox
from pbx_bridge.directory.store import Directory

ORG_ID = 9
LIVE_ON_EXT = 8  # live receivers subscribed to the bench extension
START = json.dumps({"action": "StartRecording", "format": "wav", "phoneCallViewId": "01"})
STOP = json.dumps({"action": "StopRecording", "phoneCallViewId": "01"})
PHASES = ("none", "live", "dead")


@dataclass
class Options:
    subscriptions: int = 1000
    samples: int = 200
    calls: int = 4
    timeout: float = 10.0  # [events] timeout: how long a hanging receiver holds an attempt
    lag_wait: float = 120.0  # at most this long for the live receivers to get everything
    log: Callable[[str], None] = field(default=lambda s: print(s, file=sys.stderr, flush=True))

    @classmethod
    def quick(cls, **kw: Any) -> Options:
        base: dict[str, Any] = dict(subscriptions=40, samples=6, calls=2, timeout=2.0,
                                    lag_wait=30.0)
        base.update(kw)
        return cls(**base)


def other_extensions(n: int) -> str:
    """TOML for n more extensions of the bench organization, ten per user."""
    out = []
    for u in range(0, n, 10):
        out.append(f'[[users]]\nid = {1000 + u // 10}\nname = "Bench User {u // 10}"\n'
                   f'role = "user"\norganization = {ORG_ID}\n')
    for i in range(n):
        out.append(f'[[extensions]]\nnumber = "0009*{1000 + i}"\nowner = {1000 + i // 10}\n'
                   f'device = "PJSIP/0009*{1000 + i}"\n')
    return "\n".join(out)


class WebhookLab(Lab):
    """bench/run.py's lab, its directory grown by `others` extensions and its bridge
    allowed to deliver to loopback."""

    def __init__(self, opts: Options, sandbox: Sandbox | None) -> None:
        super().__init__(RunOptions(log=opts.log), sandbox)
        self.wopts = opts
        self.admin: dict[str, str] = {}

    def bridge_env(self) -> dict[str, str]:
        return dict(super().bridge_env(),
                    PBX_BRIDGE_EVENTS__ALLOW_NETWORKS='["127.0.0.0/8"]',
                    PBX_BRIDGE_EVENTS__TIMEOUT=str(self.wopts.timeout),
                    PBX_BRIDGE_LOGGING__LEVEL="WARNING")

    async def start_bridge(self) -> None:
        if not self.admin:  # the first start: grow the directory first
            others = max(0, self.wopts.subscriptions - LIVE_ON_EXT - 2)
            grown = self.tmp / "directory.toml"
            grown.write_text(DIRECTORY_TOML.read_text() + "\n" + other_extensions(others))
            directory = Directory.open(self.db_path)
            directory.load_toml(grown)
            app, _ = directory.create_app(ADMIN_ID, "bench webhooks")
            self.admin = {"Authorization": f"Bearer {directory.issue_token(app, ttl=86400)[0]}"}
            directory.close()
        await super().start_bridge()

    async def subscribe(self, user: int, ext: str, url: str, active: bool = True) -> str:
        assert self.http is not None
        async with self.http.post(
                f"{self.base}/uapi/extensions/{user}/{ext}/phoneCallEvents",
                json={"url": url, "active": active}, headers=self.admin) as r:
            body = await r.json()
            if r.status != 201:
                raise RuntimeError(f"subscribing {ext}: {r.status} {body}")
            return str(body["id"])

    async def set_active(self, ext: str, sub_id: str, active: bool) -> None:
        assert self.http is not None
        async with self.http.put(
                f"{self.base}/uapi/extensions/{USER_ID}/{ext}/phoneCallEvents/{sub_id}",
                json={"active": active}, headers=self.admin) as r:
            if r.status != 200:
                raise RuntimeError(f"PUT active={active}: {r.status} {await r.text()}")

    async def metrics(self) -> dict[str, float]:
        assert self.http is not None
        async with self.http.get(f"{self.base}/metrics", headers={
                "Authorization": f"Bearer {self.metrics_token}"}) as r:
            text = await r.text()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("pbx_bridge_webhook_") and "_total" in line.split(" ")[0]:
                name, value = line.rsplit(" ", 1)
                out[name.removeprefix("pbx_bridge_webhook_")] = float(value)
        return out


class ReceiverProcess:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.webhook_receivers"],
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        self.ports: dict[str, int] = json.loads(self.proc.stdout.readline())

    def url(self, kind: str, n: int = 0) -> str:
        return f"http://127.0.0.1:{self.ports[kind]}/hook/{n}"

    async def get(self, http: aiohttp.ClientSession, what: str) -> Any:
        async with http.get(f"http://127.0.0.1:{self.ports['live']}/{what}") as r:
            return await r.json()

    def close(self) -> None:
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


async def phase(lab: WebhookLab, calls: list[BenchCall], samples: int, pacer: Pacer
                ) -> tuple[list[float], list[float]]:
    """`samples` timed StartRecordings (each then stopped): (latencies, send times). One
    pacer for every phase: a call started again in the second its last start was
    answered would wait for the next second (the file-name rule), whatever the phase."""
    latencies: list[float] = []
    sent: list[float] = []
    i = 0
    while len(latencies) < samples:
        call = calls[i % len(calls)]
        i += 1
        while not pacer.ready(call):
            await asyncio.sleep(0.01)
        sent.append(time.time())
        latencies.append(await lab.put(call, START))
        pacer.last[call.uid] = int(time.time())
        await lab.put(call, STOP)
    return latencies, sent


def lags(receipts: list[list[Any]], sent: list[float], paths: set[str]
         ) -> tuple[list[float], list[float]]:
    """Per (receiver, recording.started): arrival - send time of its StartRecording,
    the k-th started event (by sequence) belonging to the k-th sample; and per sample,
    the slowest live receiver."""
    started = sorted({r[3] for r in receipts if r[2] == "recording.started" and r[0] in paths})
    index = {seq: k for k, seq in enumerate(started[:len(sent)])}
    each: list[float] = []
    slowest: dict[int, float] = defaultdict(float)
    for path, _id, kind, seq, t in receipts:
        if kind == "recording.started" and path in paths and seq in index:
            lag = t - sent[index[seq]]
            each.append(lag)
            slowest[seq] = max(slowest[seq], lag)
    return each, list(slowest.values())


async def wait_delivered(rx: ReceiverProcess, http: aiohttp.ClientSession, paths: set[str],
                         want: int, timeout: float) -> list[list[Any]]:
    deadline = time.monotonic() + timeout
    while True:
        receipts = (await rx.get(http, "receipts"))["receipts"]
        got = {(r[0], r[3]) for r in receipts if r[2] == "recording.started" and r[0] in paths}
        if len(got) >= want or time.monotonic() > deadline:
            return receipts
        await asyncio.sleep(0.2)


async def run(opts: Options, sandbox: Sandbox | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"machine": machine(), "options": {
        "subscriptions": opts.subscriptions, "samples": opts.samples, "calls": opts.calls,
        "timeout": opts.timeout}, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    lab = WebhookLab(opts, sandbox)
    rx = ReceiverProcess()
    try:
        await lab.start()
        assert lab.http is not None
        calls = await lab.ensure_calls(opts.calls)
        opts.log("phase none: no subscription")
        api: dict[str, Any] = {}
        pacer = Pacer()
        api["none"], _ = await phase(lab, calls, opts.samples, pacer)
        opts.log(f"subscribing {opts.subscriptions}")
        t0 = time.perf_counter()
        live_paths = {f"/hook/{n}" for n in range(LIVE_ON_EXT)}
        for n in range(LIVE_ON_EXT):
            await lab.subscribe(USER_ID, EXT, rx.url("live", n))
        dead = {EXT: [await lab.subscribe(USER_ID, EXT, rx.url(kind), active=False)
                      for kind in ("hanging", "refusing")]}
        for i in range(max(0, opts.subscriptions - LIVE_ON_EXT - 2)):
            await lab.subscribe(1000 + i // 10, f"0009*{1000 + i}",
                                rx.url("live", LIVE_ON_EXT + i))
        result["subscribe_s"] = time.perf_counter() - t0
        sent: dict[str, list[float]] = {}
        for name in ("live", "dead"):
            if name == "dead":
                for sub_id in dead[EXT]:
                    await lab.set_active(EXT, sub_id, True)
            opts.log(f"phase {name}")
            api[name], sent[name] = await phase(lab, calls, opts.samples, pacer)
        want = 2 * opts.samples * LIVE_ON_EXT
        receipts = await wait_delivered(rx, lab.http, live_paths, want, opts.lag_wait)
        result["hung"] = await rx.get(lab.http, "hung")
        result["metrics"] = await lab.metrics()
        result["api"] = {k: stats(v) for k, v in api.items()}
        result["lag"] = {}
        offset = 0
        for name in ("live", "dead"):
            # the started events of both phases, in sequence: this phase's are the next
            each, slowest = lags(receipts, [0.0] * offset + sent[name], live_paths)
            each = each[offset * LIVE_ON_EXT:] if offset else each
            result["lag"][name] = {"each": stats(each), "slowest": stats(slowest[offset:])}
            offset += len(sent[name])
        result["delivered"] = len({(r[0], r[3]) for r in receipts
                                   if r[2] == "recording.started" and r[0] in live_paths})
        result["delivered_wanted"] = want
    finally:
        with contextlib.suppress(Exception):
            await lab.close()
        rx.close()
    return result


def table(r: dict[str, Any]) -> str:
    m, o = r["machine"], r["options"]
    lines = [f"pbx_bridge webhooks bench, {r['when']}: {m['nproc']} x {m['cpu_model']}, "
             f"Python {m['python']}; {o['subscriptions']} subscriptions, {o['samples']} "
             f"samples per phase over {o['calls']} calls, [events] timeout {o['timeout']} s",
             "", "StartRecording (PUT -> 200)          p50 ms   p90 ms   p99 ms   p50 vs none"]
    base = r["api"]["none"]["p50"]
    labels = {"none": "no subscription", "live": "998 live subscriptions",
              "dead": "+ 1 hanging, 1 refusing"}
    if o["subscriptions"] != 1000:
        labels["live"] = f"{o['subscriptions'] - 2} live subscriptions"
    for name in PHASES:
        st = r["api"][name]
        lines.append(f"  {labels[name]:<34}{st['p50']:>8.1f} {st['p90']:>8.1f} "
                     f"{st['p99']:>8.1f}   {st['p50'] / base:>8.2f}x")
    lines += ["", f"Delivery lag, {LIVE_ON_EXT} live receivers of {EXT} "
              "(send of StartRecording -> receipt)   p50 ms   p99 ms   max ms"]
    for name in ("live", "dead"):
        for key, what in (("each", "each delivery"), ("slowest", "slowest receiver")):
            st = r["lag"][name][key]
            lines.append(f"  {labels[name] + ', ' + what:<58}{st['p50']:>8.1f} "
                         f"{st['p99']:>8.1f} {st['max']:>8.1f}")
    lines += ["", f"delivered {r['delivered']} of {r['delivered_wanted']} recording.started; "
              f"hanging port accepted {r['hung']['accepted']} connections; subscribing took "
              f"{r['subscribe_s']:.1f} s; bridge counters {r['metrics']}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.webhooks",
                                 description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="40 subscriptions, 6 samples (smoke)")
    ap.add_argument("--subscriptions", type=int)
    ap.add_argument("--samples", type=int)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    kw = {k: v for k, v in (("subscriptions", args.subscriptions),
                            ("samples", args.samples)) if v}
    opts = Options.quick(**kw) if args.quick else Options(**kw)
    result = asyncio.run(run(opts))
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
