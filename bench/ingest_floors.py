"""Why the ingest aims of issue 15 are where they are: the same replayed stream as
bench/ingest_path.py, measured in one process without a socket, one stage at a time.

    .venv/bin/python -m bench.ingest_floors [--events N]

Parser floors (64 KiB feeds, decode and split on blank lines included):
  * ``line dicts``: ``dict(map(str.split, lines, ": ", 1))`` per message, nothing else:
    the least a line-based parser does, with no ChanVariable renaming, no padding,
    repeated-key or size checks (so not a parser: a floor);
  * ``+ ChanVariable``: the same with the parser's renaming (framing._build_renamed);
  * ``whole blocks``: ``dict(zip(it, it, strict=False))`` over the block split on ": " and CRLF at
    once, only right when every line has exactly one ": " (unsound: a floor);
  * ``AmiParser``: the real parser.
Full path floor: the parsed messages fed to PbxLink's event handler (tracker, then
every feature of ``Services``), no socket, no AmiClient.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import math
import sys
import tempfile
import time
from collections.abc import Callable
from itertools import repeat
from pathlib import Path

from bench.ingest_path import DIRECTORY, blocks
from bench.replay import rewrite
from pbx_bridge.config import Settings
from pbx_bridge.directory.store import Directory
from pbx_bridge.pbx.framing import AmiParser, _build_renamed
from pbx_bridge.server import Services

Build = Callable[[list[str]], dict[str, str]]


def _line_dicts(lines: list[str]) -> dict[str, str]:
    return dict(map(str.split, lines, repeat(": "), repeat(1)))


def _split_blocks(chunks: list[bytes], build: Build) -> int:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    n, tail = 0, ""
    for chunk in chunks:
        *done, tail = (tail + decoder.decode(chunk)).split("\r\n\r\n")
        for block in done:
            build(block.split("\r\n"))
            n += 1
    return n


def _whole_blocks(chunks: list[bytes]) -> int:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    n, tail = 0, ""
    for chunk in chunks:
        *done, tail = (tail + decoder.decode(chunk)).split("\r\n\r\n")
        for block in done:
            it = iter(block.replace("\r\n", ": ").split(": "))
            dict(zip(it, it, strict=False))
            n += 1
    return n


def _parser(chunks: list[bytes]) -> int:
    parser = AmiParser(expect_banner=False)
    return sum(len(parser.feed(c)) for c in chunks)


def best_rate(fn: Callable[[], int], rounds: int = 5) -> float:
    best, n = math.inf, 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        n = fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


async def link_rate(data: bytes) -> float:
    """Events/s through PbxLink's handler alone (each round a fresh bridge). The
    bridges' background writes (events, recordings) are left to finish after the
    rounds, in a folder kept until then: they are not what is measured here."""
    msgs = AmiParser(expect_banner=False).feed(data)
    best = math.inf
    with tempfile.TemporaryDirectory(prefix="ingest-floors-") as tmp:
        opened: list[tuple[Services, Directory]] = []
        for i in range(3):
            db = Path(tmp) / f"directory{i}.sqlite3"
            directory = Directory.open(db)
            directory.load_toml(DIRECTORY)
            bridge = Services(Settings(database={"url": f"sqlite:///{db}"}), directory)
            bridge.link.reload_devices()
            opened.append((bridge, directory))
            on_event = bridge.link._on_event
            t0 = time.perf_counter()
            for m in msgs:
                await on_event(m)
            best = min(best, time.perf_counter() - t0)
        for bridge, directory in opened:
            await bridge.events.drained()
            await asyncio.sleep(0.5)
            directory.close()
    return len(msgs) / best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=50_000)
    args = ap.parse_args()
    base = blocks()
    data = b"".join(rewrite(base, max(1, math.ceil(args.events / len(base)))))
    chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)]
    rows = [
        ("line dicts (floor: no renaming, no checks)",
         best_rate(lambda: _split_blocks(chunks, _line_dicts))),
        ("line dicts + ChanVariable renaming",
         best_rate(lambda: _split_blocks(chunks, _build_renamed))),
        ("whole blocks (floor: unsound)", best_rate(lambda: _whole_blocks(chunks))),
        ("AmiParser", best_rate(lambda: _parser(chunks))),
        ("PbxLink handler: tracker + features (no socket, no parser)",
         asyncio.run(link_rate(data))),
    ]
    events = data.count(b"\r\n\r\n")
    print(f"{events:,} events, in one process, best of several")
    for label, rate in rows:
        print(f"  {label:<62}{rate:>10,.0f}/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
