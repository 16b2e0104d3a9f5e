"""A directory of a provider's size (issue 16): `pbx-bridge serve` with 50,000 and 500,000
extensions (bench/provider_directory.py: 500 organizations, 5,000 users) on the sandbox
Asterisk. Per size it prints, for the bridge as a subprocess:

- first start (AstDB family empty): time to /readyz 200, time until the AstDB policy is
  written (``pbx_bridge_astdb_policy_synced``), the bridge's CPU until then, RSS after;
- restart (AstDB already holds the policy): the same;
- a no-op `pbx-bridge directory load` (the same file again, by the revision's own CLI)
  and a 1% change (one extension in 100 starts or stops recording): the bridge's CPU
  spent on it (its CPU over the window minus
  its idle CPU over an equal window) and the AstDB keys it wrote.

    PBX_BRIDGE_SANDBOX_NAME=bench PBX_BRIDGE_SANDBOX_PORT_OFFSET=1400 \\
        .venv/bin/python -m bench.directory_scale --sizes 50000,500000 \\
        [--before /tmp/main-checkout --before-sizes 50000]

``--before``: a checkout of another revision (``git archive main | tar -x -C DIR``) run
the same way, same sandbox, same run, for the ratio (its ``serve`` writes the whole
policy before it is ready, so it is synced when ready). Bounded: every wait gives up after
``--limit`` seconds and the row says so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.provider_directory import provider_directory, to_toml
from devtools.sandbox import Sandbox
from pbx_bridge.directory.store import Directory
from tests.support.bridge import serve_environ

ROOT = Path(__file__).resolve().parents[1]
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else float("nan")


@dataclass
class Start:
    ready_s: float = float("nan")
    synced_s: float = float("nan")
    cpu_s: float = float("nan")
    rss_mb: float = float("nan")


@dataclass
class Row:
    revision: str
    extensions: int
    load_s: float = float("nan")
    first: Start = field(default_factory=Start)
    restart: Start = field(default_factory=Start)
    noop_cpu_s: float = float("nan")
    change_cpu_s: float = float("nan")
    change_writes: int = -1


class Bridge:
    """`pbx-bridge serve` (of ``src``) on the sandbox and ``tmp``'s directory."""

    def __init__(self, sb: Sandbox, tmp: Path, src: Path, port: int, limit: float) -> None:
        env = serve_environ(sb, tmp, port, PBX_BRIDGE_METRICS__AUTH="none",
                            PBX_BRIDGE_DATABASE__DIRECTORY_POLL="0.5")
        env["PYTHONPATH"] = str(src)
        self.env, self.src, self.limit = env, src, limit
        self.base = f"http://127.0.0.1:{port}"
        self.proc: asyncio.subprocess.Process | None = None
        self.log = tmp / "serve.log"

    async def start(self, http: aiohttp.ClientSession) -> Start:
        t0 = time.monotonic()
        with open(self.log, "ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pbx_bridge.cli", "serve", env=self.env, cwd=self.src,
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out)
        out_ = Start()
        if not await self._until(http, lambda: self._status("/readyz"), t0):
            return out_
        out_.ready_s = time.monotonic() - t0
        if await self._until(http, lambda: self.synced(), t0):
            out_.synced_s = time.monotonic() - t0
        assert self.proc is not None
        out_.cpu_s, out_.rss_mb = cpu_seconds(self.proc.pid), rss_mb(self.proc.pid)
        return out_

    async def _until(self, http, probe, t0: float) -> bool:
        self._http = http
        while time.monotonic() - t0 < self.limit:
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise RuntimeError(self.log.read_text()[-2000:])
            with contextlib.suppress(aiohttp.ClientError):
                if await probe():
                    return True
            await asyncio.sleep(0.05)
        return False

    async def _status(self, path: str) -> bool:
        async with self._http.get(self.base + path) as r:
            return r.status == 200

    async def metrics(self) -> dict[str, float]:
        async with self._http.get(self.base + "/metrics") as r:
            text = await r.text()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("pbx_bridge_astdb_policy"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    async def synced(self) -> bool:
        m = await self.metrics()
        # A revision without the metric writes the whole policy before it is ready.
        return m.get("pbx_bridge_astdb_policy_synced", 1.0) == 1.0

    async def writes(self) -> int:
        m = await self.metrics()
        return int(sum(v for k, v in m.items() if "writes_total" in k))

    async def load(self, toml: Path) -> None:
        """`pbx-bridge directory load` of this revision (its own rule for what to write)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pbx_bridge.cli", "directory", "load", str(toml),
            env=self.env, cwd=self.src, stdout=asyncio.subprocess.DEVNULL)
        if await proc.wait() != 0:
            raise RuntimeError(f"directory load {toml} failed")

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 30)
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()


async def reload_cost(bridge: Bridge, toml: Path, window: float) -> tuple[float, int]:
    """The bridge's CPU for one `directory load` of ``toml``, minus its idle CPU over an
    equal window; and the AstDB keys it wrote meanwhile."""
    assert bridge.proc is not None
    pid = bridge.proc.pid
    c0 = cpu_seconds(pid)
    await asyncio.sleep(window)
    idle = cpu_seconds(pid) - c0
    w0, c1 = await bridge.writes(), cpu_seconds(pid)
    await bridge.load(toml)
    await asyncio.sleep(window)  # the watch notices and reads the rows again
    for _ in range(int(bridge.limit / 0.1)):  # a big change may still be syncing
        if await bridge.synced():
            break
        await asyncio.sleep(0.1)
    spent = cpu_seconds(pid) - c1
    return max(spent - idle, 0.0), await bridge.writes() - w0


async def measure(sb: Sandbox, size: int, src: Path, revision: str, args) -> Row:
    row = Row(revision, size)
    window = args.window * max(1, size // 50000)  # 500,000 rows take longer to read again
    tmp = Path(tempfile.mkdtemp(prefix=f"dirscale-{size}-"))
    data = provider_directory(extensions=size)
    directory = Directory.open(tmp / "directory.sqlite3")
    try:
        t0 = time.monotonic()
        await asyncio.to_thread(directory.load, data)
        row.load_s = time.monotonic() - t0
        same, flipped = tmp / "same.toml", tmp / "flipped.toml"
        same.write_text(to_toml(data))
        flipped.write_text(to_toml(provider_directory(extensions=size, flip=True)))
        sb.cli("database deltree pbx_bridge", timeout=120)
        async with aiohttp.ClientSession() as http:
            bridge = Bridge(sb, tmp, src, args.port, args.limit)
            try:
                row.first = await bridge.start(http)
            finally:
                await bridge.stop()
            try:
                row.restart = await bridge.start(http)
                if row.restart.ready_s == row.restart.ready_s:  # not NaN: it is up
                    row.noop_cpu_s, _ = await reload_cost(bridge, same, window)
                    row.change_cpu_s, row.change_writes = await reload_cost(
                        bridge, flipped, window)
            finally:
                await bridge.stop()
    finally:
        directory.close()
    return row


def show(rows: list[Row]) -> None:
    head = ("revision", "extensions", "load s", "1st ready s", "1st synced s", "1st cpu s",
            "ready s", "synced s", "cpu s", "RSS MB", "no-op cpu s", "1% cpu s", "1% keys")
    print(" | ".join(head))
    for r in rows:
        cells = (r.revision, r.extensions, r.load_s, r.first.ready_s, r.first.synced_s,
                 r.first.cpu_s, r.restart.ready_s, r.restart.synced_s, r.restart.cpu_s,
                 r.restart.rss_mb, r.noop_cpu_s, r.change_cpu_s, r.change_writes)
        print(" | ".join(f"{c:.2f}" if isinstance(c, float) else str(c) for c in cells))


async def run(args) -> list[Row]:
    sb = Sandbox(name=os.environ.get("PBX_BRIDGE_SANDBOX_NAME", "bench"))
    sb.start(timeout=90)
    rows: list[Row] = []
    try:
        for size in args.sizes:
            if args.before and size in args.before_sizes:
                rows.append(await measure(sb, size, args.before, "before", args))
                show(rows[-1:])
            rows.append(await measure(sb, size, ROOT, "after", args))
            show(rows[-1:])
    finally:
        sb.cli("database deltree pbx_bridge", timeout=120)
        sb.stop()
    return rows


def _sizes(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=_sizes, default=[50000, 500000])
    parser.add_argument("--before", type=Path, help="a checkout of the revision to compare")
    parser.add_argument("--before-sizes", type=_sizes, default=[50000])
    parser.add_argument("--port", type=int, default=18650)
    parser.add_argument("--window", type=float, default=3.0, help="CPU window, seconds")
    parser.add_argument("--limit", type=float, default=600.0, help="longest wait, seconds")
    args = parser.parse_args()
    print()
    show(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
