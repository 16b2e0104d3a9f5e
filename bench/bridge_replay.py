"""The whole bridge (`Services`) on stand-in AMI servers (bench/replay.py): what
bench/ingest_path.py (one node) and bench/ingest_nodes.py (several) share.

`drive` starts the bridge on one replay server per PBX node of ``settings``, waits
until every node is ready, tells every server to blast at once, and times until every
node's tracker has taken its server's whole stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.replay import ReplayServer
from bench.tracker_ingest import FIXTURES, wire
from pbx_bridge.calls.transcript import read_events
from pbx_bridge.config import AmiSettings, Settings
from pbx_bridge.directory.store import Directory
from pbx_bridge.pbx.ami import AmiClient
from pbx_bridge.server import Services

if TYPE_CHECKING:  # not at run time: a --before REF may predate it
    from pbx_bridge.core.link import PbxLink

__all__ = ["DIRECTORY", "Drive", "blocks", "drive", "replay_ami", "until"]

REPO = Path(__file__).resolve().parent.parent
DIRECTORY = REPO / "config" / "directory.example.toml"  # the transcripts' phones


def blocks() -> list[bytes]:
    """The captured transcripts (tests/fixtures/*.jsonl) as AMI wire blocks."""
    return [wire(ev) for p in sorted(FIXTURES.glob("*.jsonl")) for ev in read_events(p)]


async def until(pred: Any, timeout: float, what: str, step: float = 0.002) -> None:
    deadline = time.perf_counter() + timeout
    while not pred():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(step)


def replay_ami(s: AmiSettings) -> AmiClient:
    """A node's AmiClient as `serve` makes it, reconnecting at once (a bench must not
    sit in a backoff)."""
    return AmiClient(s.host, s.port, s.username, "x", ping_interval=s.ping_interval,
                     ping_timeout=s.ping_timeout, action_timeout=s.action_timeout,
                     connect_timeout=s.connect_timeout, backoff_base=0.01, backoff_cap=0.1)


def _services(
    settings: Settings, directory: Directory, names: list[str],
) -> tuple[Services, Callable[[], bool], Callable[[], dict[str, PbxLink]]]:
    """The bridge, when it is ready, and its links by node name. One node: only what
    every revision of `Services` has (``ami=``, ``link``), so that
    ``bench.ingest_path --before REF`` runs on a REF older than several nodes."""
    if len(names) == 1:
        entries = getattr(settings, "pbx", None)  # none before several nodes
        one = replay_ami(entries[0] if entries else settings.ami)
        single = Services(settings, directory, ami=one)
        return single, lambda: single.link.ready, lambda: {names[0]: single.link}
    bridge = Services(settings, directory,
                      amis={n.name: replay_ami(n) for n in settings.nodes()})
    nodes = bridge.nodes
    # Ready as a request sees it: connected, resynced, and a SystemName of its own.
    return (bridge, lambda: all(nodes.is_ready(n) for n in nodes.all),
            lambda: {n.name: n.link for n in nodes.all})


@dataclass(frozen=True)
class Drive:
    """One blast into one bridge process."""

    seconds: float  # the first "go" until the last node's tracker had everything
    cpu_seconds: float  # this process's CPU (every thread) over the same window
    events: dict[str, int]  # node -> events its tracker took
    done: dict[str, float]  # node -> seconds until its tracker had everything
    sent: dict[str, float]  # node -> seconds its replay server spent writing the blast


async def drive(settings: Settings, db: Path, servers: Mapping[str, ReplayServer],
                timeout: float = 300.0) -> Drive:
    """The bridge of ``settings`` (database ``db``, its directory loaded) on
    ``servers`` (node name -> the server standing in for that node's Asterisk)."""
    for server in servers.values():
        server.accept()
    directory = Directory.open(db)
    bridge, ready, links = _services(settings, directory, list(servers))
    try:
        await bridge.start()
        await until(ready, 30, "the bridge on the replay", 0.01)
        trackers = {name: link.tracker for name, link in links().items()}
        start = {name: tracker.events for name, tracker in trackers.items()}
        want = {name: servers[name].events for name in trackers}
        done: dict[str, float] = {}

        def all_done() -> bool:
            for name, tracker in trackers.items():
                if name not in done and tracker.events - start[name] >= want[name]:
                    done[name] = time.perf_counter() - t0
            return len(done) == len(trackers)

        c0 = time.process_time()
        for server in servers.values():
            server.go()
        t0 = time.perf_counter()
        await until(all_done, timeout, "the replay", 0.005)
        t, cpu = time.perf_counter() - t0, time.process_time() - c0
        sent = {name: await asyncio.to_thread(s.sent) for name, s in servers.items()}
        took = {name: tracker.events - start[name] for name, tracker in trackers.items()}
    finally:
        await bridge.close()
        directory.close()
        for server in servers.values():
            server.close_conn()
    return Drive(t, cpu, took, done, sent)
