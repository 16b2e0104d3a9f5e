"""One tree's resync timings, for bench/resync.py (run as a file, not as ``-m``).

It imports nothing from ``bench`` and only ``pbx_bridge`` from ``PYTHONPATH``, so the
same worker times the code of any checkout (bench/resync.py's ``--base``) against the
same Asterisk and the same live calls. An in-process bridge (`Services`, all features)
connects, then its AMI link is cut ``rounds`` times as a network fault would; each
(re)connect is timed from the AMI login to the link's readiness. Prints one JSON line.

    PYTHONPATH=<tree> python bench/resync_worker.py '<json arguments>'
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from pbx_bridge.config import Settings
from pbx_bridge.directory.store import Directory
from pbx_bridge.pbx.ami import AmiClient
from pbx_bridge.server import Services


async def until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.perf_counter() + timeout
    while not pred():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


async def measure(a: dict[str, Any]) -> dict[str, Any]:
    settings = Settings(
        ami={"port": a["ami_port"], "secret": a["secret"], "action_timeout": 10.0},
        database={"url": a["db_url"]},
    )
    directory = Directory.open(a["db_url"])
    marks: dict[str, list[float]] = {"login": [], "ready": []}
    s = settings.ami
    ami = AmiClient(
        s.host, s.port, s.username, s.secret.get_secret_value(),
        ping_interval=s.ping_interval, ping_timeout=s.ping_timeout,
        action_timeout=s.action_timeout, connect_timeout=s.connect_timeout,
        backoff_base=0.01, backoff_cap=0.1,
    )
    ami.add_connect_handler(lambda: marks["login"].append(time.perf_counter()))
    bridge = Services(settings, directory, ami=ami)  # its connect handler runs after ours
    ami.add_connect_handler(lambda: marks["ready"].append(time.perf_counter()))
    tracker = bridge.link.tracker
    phases: dict[str, float] = {}
    time_phases(bridge, phases)

    def consistent() -> bool:
        ours = [ch for ch in tracker.channels.values() if ch.name.startswith(a["device"] + "-")]
        recording = sum(1 for ch in ours if ch.recording is not None)
        if len(ours) != a["channels"] or recording != a["recorded_channels"]:
            print(f"inconsistent: {len(ours)} channels, {recording} recording", file=sys.stderr)
            return False
        return True

    times, ok = [], []
    prof = cProfile.Profile() if a.get("profile") else None
    try:
        await bridge.start()
        await until(lambda: bool(marks["ready"]), 60, "the first resync")
        ok.append(consistent())
        phases.clear()  # the cuts' only
        if prof:
            prof.enable()
        for _ in range(a["rounds"]):
            k = len(marks["ready"])
            writer = ami._writer
            assert writer is not None
            writer.transport.abort()
            await until(lambda k=k: len(marks["ready"]) > k, 60, "the resync")
            times.append(marks["ready"][-1] - marks["login"][-1])
            ok.append(consistent())
            await asyncio.sleep(a.get("settle", 0.2))  # background work of the resync
    finally:
        if prof:
            prof.disable()
            prof.dump_stats(a["profile"])
        await bridge.close()
        directory.close()
    return {"login_to_ready_s": times, "all_consistent": all(ok), "phases_s": phases}


def time_phases(bridge: Services, phases: dict[str, float]) -> None:
    """Sum, per feature hook and for the CoreShowChannels answer, the time spent in it
    (wrapped on the instances: the tree's code is not changed)."""
    link = bridge.link

    def wrap(obj: Any, name: str, label: str) -> None:
        inner = getattr(obj, name)
        if asyncio.iscoroutinefunction(inner):
            async def timed_async(*args: Any, **kw: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return await inner(*args, **kw)
                finally:
                    phases[label] = phases.get(label, 0.0) + time.perf_counter() - t0
            setattr(obj, name, timed_async)
        else:
            def timed(*args: Any, **kw: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return inner(*args, **kw)
                finally:
                    phases[label] = phases.get(label, 0.0) + time.perf_counter() - t0
            setattr(obj, name, timed)

    wrap(link.ami, "send_list_action", "send_list_action")
    wrap(link.tracker, "resync", "tracker.resync")
    wrap(link, "_devices", "devices")
    for f in link._features:
        n = type(f).__name__
        for hook in ("review_snapshot", "on_snapshot", "on_connected", "on_ready"):
            wrap(f, hook, f"{n}.{hook}")


def main() -> None:
    logging.getLogger("pbx_bridge").setLevel(logging.ERROR)  # the cuts are on purpose
    print(json.dumps(asyncio.run(measure(json.loads(sys.argv[1])))))


if __name__ == "__main__":
    main()
