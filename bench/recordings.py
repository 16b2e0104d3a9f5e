"""The recordings routes side by side with this machine's own floors (issue 11):

1. Media download: `GET /uapi/recordings/@me/0009*600/{id}/media` of a large real WAV
   through `pbx-bridge serve`, against reading the same file with `cat` (into a pipe)
   and with `os.sendfile` over a loopback TCP socket (what a bare file server does):
   throughput (MB/s, median of the rounds) and time to the first body byte.
2. Catalog list: `GET /uapi/recordings/@me/0009*600` (first page, and with the
   `state`, `phoneCallId` and `since`/`until` filters) with 100,000 catalogued
   recordings on that extension, on SQLite and on a throw-away PostgreSQL server
   (tests/support/postgres.py), against GET one recording (same auth and render, one
   row by primary key) on the same bridge.

    .venv/bin/python -m bench.recordings                    # both parts, both backends
    .venv/bin/python -m bench.recordings --quick            # a rough pass in seconds
    .venv/bin/python -m bench.recordings --no-index         # without the list's
                                                            # indexes (dropped ad hoc)

The WAV is a real recording: Asterisk's `demo-instruct` prompt (29 s of speech) from the
sandbox root, decoded to PCM 8 kHz with the root's sox, repeated up to --media-mb (or
--source FILE, any PCM WAV). The bridge runs with no Asterisk (its AMI port is closed):
the routes measured never ask the PBX. Prints a table; figures go in docs/performance.md,
none is asserted (tests/integration/test_bench_smoke.py checks the results are well formed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import insert, text

from bench import process
from bench.run import free_port, machine, stats
from pbx_bridge.directory.store import Directory
from pbx_bridge.storage.schema import recordings

BENCH = Path(__file__).resolve().parent
DIRECTORY_TOML = BENCH / "directory.toml"
EXT = "0009*600"
USER_ID, ORG_ID = 90, 9
PROMPT = "usr/share/asterisk/sounds/en_US_f_Allison/demo-instruct.gsm"
CHUNK = 1 << 20
# The indexes revision 0005 gives the list (storage/schema.py); --no-index drops them
# ad hoc to measure what they buy.
LIST_INDEXES = ("ix_recordings_extension_started", "ix_recordings_call_id")


@dataclass
class Options:
    rows: int = 100_000
    media_mb: int = 40
    media_rounds: int = 10
    list_samples: int = 30
    backends: tuple[str, ...] = ("sqlite", "postgresql")
    index: bool = True
    source: Path | None = None
    log: Callable[[str], None] = field(default=lambda s: print(s, file=sys.stderr, flush=True))

    @classmethod
    def quick(cls, **kw: Any) -> Options:
        base: dict[str, Any] = dict(rows=2_000, media_mb=2, media_rounds=2, list_samples=3)
        base.update(kw)
        return cls(**base)


# --------------------------------------------------------------------------- the file


def _pcm_of_prompt() -> bytes:
    """Asterisk's demo-instruct prompt as raw 16-bit PCM at 8 kHz (the root's sox)."""
    from devtools.sandbox import default_root

    root = default_root()
    if not (root / PROMPT).exists():
        raise RuntimeError(f"no {PROMPT} in the sandbox root {root}: give --source FILE")
    return subprocess.run(
        ["chroot", str(root), "sox", "/" + PROMPT, "-t", "raw", "-e", "signed", "-b", "16",
         "-c", "1", "-r", "8000", "-"],
        capture_output=True, check=True, timeout=60,
    ).stdout


def _pcm_of_wav(path: Path) -> bytes:
    data = path.read_bytes()
    at = data.find(b"data")
    if data[:4] != b"RIFF" or at < 0:
        raise RuntimeError(f"{path} is not a WAV file with a data chunk")
    return data[at + 8:]


def build_wav(dest: Path, megabytes: int, source: Path | None) -> int:
    """A PCM 8 kHz mono WAV of about `megabytes` MB: the real recording, repeated."""
    pcm = _pcm_of_wav(source) if source else _pcm_of_prompt()
    repeats = max(1, round(megabytes * 1_000_000 / len(pcm)))
    size = len(pcm) * repeats
    header = b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16) + b"data" + struct.pack("<I", size)
    with dest.open("wb") as f:
        f.write(header)
        for _ in range(repeats):
            f.write(pcm)
    return 44 + size


# --------------------------------------------------------------------------- the floors


def read_cat(path: Path) -> tuple[float, float, int]:
    """(first byte s, total s, bytes): `cat FILE` into a pipe we read."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(["cat", str(path)], stdout=subprocess.PIPE, bufsize=0)
    assert proc.stdout is not None
    pipe = proc.stdout.fileno()
    first, total = 0.0, 0
    buf = bytearray(CHUNK)
    while n := os.readv(pipe, [buf]):
        if not total:
            first = time.perf_counter() - t0
        total += n
    proc.wait()
    return first, time.perf_counter() - t0, total


def read_sendfile(path: Path) -> tuple[float, float, int]:
    """(first byte s, total s, bytes): os.sendfile of the file to a loopback socket."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, path.open("rb") as f:
            size, offset = os.fstat(f.fileno()).st_size, 0
            while offset < size:
                offset += os.sendfile(conn.fileno(), f.fileno(), offset, size - offset)

    server = threading.Thread(target=serve)
    server.start()
    t0 = time.perf_counter()
    first, total = 0.0, 0
    buf = bytearray(CHUNK)
    with socket.create_connection(listener.getsockname()) as client:
        while n := client.recv_into(buf):
            if not total:
                first = time.perf_counter() - t0
            total += n
    elapsed = time.perf_counter() - t0
    server.join()
    listener.close()
    return first, elapsed, total


async def read_http(http: aiohttp.ClientSession, url: str,
                    headers: dict[str, str]) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    first, total = 0.0, 0
    async with http.get(url, headers=headers) as r:
        if r.status != 200:
            raise RuntimeError(f"GET {url}: {r.status} {await r.text()}")
        async for chunk in r.content.iter_any():
            if not total:
                first = time.perf_counter() - t0
            total += len(chunk)
    return first, time.perf_counter() - t0, total


# --------------------------------------------------------------------------- the catalog


def _row(i: int, now: float, host_path: str | None = None, size: int = 0) -> dict[str, Any]:
    """One catalogued recording: one a minute going back from now, 1 % failed."""
    started = now - 60.0 * (i + 1)
    failed = i % 100 == 7
    return {
        "id": f"r-{secrets.token_hex(8)}", "organization": ORG_ID, "extension": EXT,
        "started": started, "call_id": secrets.token_hex(10), "view_id": "01",
        "channel": f"{started:.6f}", "format": "wav", "started_by": "api", "paused": "[]",
        "state": "failed" if failed else "completed", "owner": ORG_ID,
        "file": None if failed else f"9/{EXT}/bench/{i}.wav", "host_path": host_path,
        "stopped": started + 30.0, "duration": None if failed else 30.0,
        "size": size or (44 if failed else 480_044), "sha256": None if failed else "0" * 64,
        "reason": "no audio" if failed else None,
    }


def fill(url: str, rows: int, media: Path, media_size: int, index: bool) -> dict[str, str]:
    """The bench directory, a token, `rows` recordings and the media's row; their ids."""
    with Directory.open(url) as directory:
        directory.load_toml(DIRECTORY_TOML)
        client_id, _ = directory.create_app(USER_ID, "bench")
        token, _ = directory.issue_token(client_id, ttl=86400)
        now = time.time()
        media_row = _row(-1, now + 120, str(media), media_size)
        sample = _row(rows // 2, now)
        with directory.database.transaction(write=True) as conn:
            conn.execute(insert(recordings), [media_row, sample])
            for start in range(0, rows - 1, 10_000):
                batch = [_row(i, now) for i in range(start, min(start + 10_000, rows))
                         if i != rows // 2]
                conn.execute(insert(recordings), batch)
            if not index:
                for name in LIST_INDEXES:
                    conn.execute(text(f"DROP INDEX {name}"))
        if url.startswith("postgresql"):
            with directory.database.transaction(write=True) as conn:
                conn.execute(text("ANALYZE recordings"))
    return {"token": token, "media": media_row["id"], "one": sample["id"],
            "call": sample["call_id"], "since": _iso(sample["started"] - 43200),
            "until": _iso(sample["started"] + 43200)}


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%%2B00:00", time.gmtime(ts))  # "+", quoted


# --------------------------------------------------------------------------- the bridge


class Bridge:
    """`pbx-bridge serve` as a subprocess on one database, with no Asterisk behind it."""

    def __init__(self, url: str, monitor: Path, workdir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
        env.update(
            PBX_BRIDGE_HTTP__HOST="127.0.0.1", PBX_BRIDGE_HTTP__PORT=str(self.port),
            PBX_BRIDGE_HTTP__PUBLIC_BASE_URL=self.base,
            PBX_BRIDGE_AMI__HOST="127.0.0.1", PBX_BRIDGE_AMI__PORT=str(free_port()),
            PBX_BRIDGE_AMI__SECRET="no-asterisk-here", PBX_BRIDGE_DATABASE__URL=url,
            PBX_BRIDGE_RECORDINGS__MONITOR_DIR=str(monitor),
        )
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    async def __aenter__(self) -> Bridge:
        log = (self.workdir / "bridge.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pbx_bridge.cli", "serve"], env=self.env, cwd=self.workdir,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as http:
            while True:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    tail = (self.workdir / "bridge.log").read_text(errors="replace")[-800:]
                    raise RuntimeError(f"pbx-bridge serve not ready: {tail}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.base}/healthz") as r:
                        if r.status == 200:
                            return self
                await asyncio.sleep(0.05)

    async def __aexit__(self, *exc: object) -> None:
        await process.stop(self.proc)


# --------------------------------------------------------------------------- measuring


def _rate(xs: list[tuple[float, float, int]]) -> dict[str, Any]:
    mbps = sorted(size / total / 1e6 for _, total, size in xs)
    return {"mb_per_s": mbps[len(mbps) // 2], "mb_per_s_all": mbps,
            "first_byte": stats([first for first, _, _ in xs]), "bytes": xs[0][2]}


async def media_part(opts: Options, bridge: Bridge, ids: dict[str, str],
                     path: Path) -> dict[str, Any]:
    url = f"{bridge.base}/uapi/recordings/@me/{EXT}/{ids['media']}/media"
    headers = {"Authorization": f"Bearer {ids['token']}"}
    runs: dict[str, list[tuple[float, float, int]]] = {"bridge": [], "cat": [], "sendfile": []}
    async with aiohttp.ClientSession() as http:
        await read_http(http, url, headers)  # warm: the page cache, the connection
        for _ in range(opts.media_rounds):  # interleaved, so a busy spell hits all three
            runs["bridge"].append(await read_http(http, url, headers))
            runs["cat"].append(await asyncio.to_thread(read_cat, path))
            runs["sendfile"].append(await asyncio.to_thread(read_sendfile, path))
    return {k: _rate(v) for k, v in runs.items()}


def _list_urls(bridge: Bridge, ids: dict[str, str]) -> dict[str, str]:
    base = f"{bridge.base}/uapi/recordings/@me/{EXT}"
    return {
        "one": f"{base}/{ids['one']}",  # the floor: GET one recording
        "first page": base,
        "state=failed": f"{base}?state=failed",
        "phoneCallId": f"{base}?phoneCallId={ids['call']}",
        "since/until (a day)": f"{base}?since={ids['since']}&until={ids['until']}",
        "page 50 (startIndex=980)": f"{base}?startIndex=980",
    }


async def list_part(opts: Options, bridge: Bridge, ids: dict[str, str]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {ids['token']}"}
    urls = _list_urls(bridge, ids)
    samples: dict[str, list[float]] = {k: [] for k in urls}
    totals: dict[str, int] = {}
    async with aiohttp.ClientSession() as http:
        for _ in range(opts.list_samples + 1):  # the first round warms up, not counted
            for name, url in urls.items():
                t0 = time.perf_counter()
                async with http.get(url, headers=headers) as r:
                    body = await r.json() if r.status == 200 else None
                samples[name].append(time.perf_counter() - t0)
                if body is None:
                    raise RuntimeError(f"GET {url}: {r.status}")
                totals[name] = body.get("totalResults", 1)
    return {name: {**stats(xs[1:]), "total": totals[name]} for name, xs in samples.items()}


# --------------------------------------------------------------------------- the run


@contextlib.contextmanager
def databases(opts: Options, tmp: Path) -> Iterator[dict[str, str]]:
    """A fresh database per backend asked for: name -> URL."""
    urls = {"sqlite": f"sqlite:///{tmp / 'catalog.sqlite3'}"}
    if "postgresql" not in opts.backends:
        yield urls
        return
    sys.path.insert(0, str(BENCH.parent))
    from tests.support.postgres import PostgresServer, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL's initdb not found (/usr/lib/postgresql/*/bin)")
    server = PostgresServer(bin_dir)
    try:
        server.start()
        urls["postgresql"] = server.create_database()
        yield urls
    finally:
        server.stop()


async def run(opts: Options) -> dict[str, Any]:
    result: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                              "machine": machine(), "rows": opts.rows, "index": opts.index,
                              "list": {}}
    with tempfile.TemporaryDirectory(prefix="pbx-bridge-bench-rec-") as name:
        tmp = Path(name)
        monitor = tmp / "monitor"
        (monitor / "9" / EXT).mkdir(parents=True)
        media = monitor / "9" / EXT / "large.wav"
        opts.log(f"building a {opts.media_mb} MB WAV")
        result["media_bytes"] = build_wav(media, opts.media_mb, opts.source)
        with databases(opts, tmp) as urls:
            for backend, url in urls.items():
                if backend not in opts.backends:
                    continue
                opts.log(f"{backend}: {opts.rows:,} catalogued recordings")
                t0 = time.perf_counter()
                ids = await asyncio.to_thread(fill, url, opts.rows, media,
                                              result["media_bytes"], opts.index)
                result.setdefault("fill_s", {})[backend] = time.perf_counter() - t0
                (tmp / backend).mkdir()
                async with Bridge(url, monitor, tmp / backend) as bridge:
                    if backend == opts.backends[0]:
                        opts.log("media: bridge, cat, sendfile")
                        result["media"] = await media_part(opts, bridge, ids, media)
                    opts.log(f"{backend}: list latency")
                    result["list"][backend] = await list_part(opts, bridge, ids)
    return result


def table(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [f"pbx_bridge recordings bench, {r['when']}: {m['nproc']} x {m['cpu_model']}, "
             f"Python {m['python']}", ""]
    add = lines.append
    med = r.get("media")
    if med:
        add(f"1. Media download, {r['media_bytes'] / 1e6:.1f} MB WAV (page cache warm)"
            "      MB/s  vs sendfile   first byte p50 / max ms")
        for key, label in (("bridge", "bridge GET .../media"), ("cat", "cat FILE | pipe"),
                           ("sendfile", "os.sendfile to loopback TCP")):
            x = med[key]
            ratio = x["mb_per_s"] / med["sendfile"]["mb_per_s"]
            add(f"    {label:<42}{x['mb_per_s']:>8.0f}  {ratio:>8.2f}x"
                f"   {x['first_byte']['p50']:>8.2f} / {x['first_byte']['max']:.2f}")
    for backend, rows in r["list"].items():
        add("")
        add(f"2. Catalog, {r['rows']:,} rows on {EXT}, {backend}"
            f"{'' if r['index'] else ' (list indexes dropped)'}"
            "     p50 ms   p90 ms   vs GET one   totalResults")
        floor = rows["one"]["p50"]
        for name, st in rows.items():
            add(f"    {name:<42}{st['p50']:>8.2f} {st['p90']:>8.2f} {st['p50'] / floor:>10.1f}x"
                f"   {st['total']:>10,}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.recordings",
                                 description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="few rows, a small file (smoke)")
    ap.add_argument("--rows", type=int, help="catalogued recordings (default 100000)")
    ap.add_argument("--media-mb", type=int, help="size of the WAV (default 40)")
    ap.add_argument("--source", type=Path, help="a PCM WAV to repeat (default: a prompt)")
    ap.add_argument("--sqlite-only", action="store_true")
    ap.add_argument("--no-index", action="store_true",
                    help="drop the list's indexes ad hoc before measuring (the before)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    kw: dict[str, Any] = {"index": not args.no_index, "source": args.source}
    if args.rows:
        kw["rows"] = args.rows
    if args.media_mb:
        kw["media_mb"] = args.media_mb
    if args.sqlite_only:
        kw["backends"] = ("sqlite",)
    opts = Options.quick(**kw) if args.quick else Options(**kw)
    result = asyncio.run(run(opts))
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
