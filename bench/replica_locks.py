"""What a replica's view lock costs a StartRecording (docs/design.md, "Replicas"): the
advisory lock taken and released on a throw-away PostgreSQL server (tests/support/
postgres.py; its release is sent after the answer, off the request's path), against a
plain `SELECT true` round trip on the same connection (the
floor), in the same run. Run: `.venv/bin/python -m bench.replica_locks`."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from pbx_bridge.storage.coordination import VIEW, Coordination
from pbx_bridge.storage.url import parse_url

N = 2000


async def measure(url: str) -> None:
    co = Coordination.for_database(parse_url(url))
    await co.lead("warm-up")  # connects
    floor, held = [], []
    for i in range(N):
        t0 = time.perf_counter()
        await co.lead("warm-up")  # one round trip: SELECT true
        t1 = time.perf_counter()
        async with co.hold(VIEW, f"call{i}", "0003*210"):
            t2 = time.perf_counter()
        await co.released()  # the release is off the request's path: not counted
        floor.append(t1 - t0)
        held.append(t2 - t1)
    await co.close()
    f, h = statistics.median(floor) * 1e6, statistics.median(held) * 1e6
    print(f"round trip (SELECT true): median {f:.0f} us")
    print(f"view lock taken:          median {h:.0f} us (x{h / f:.2f} of a round trip)")


def main() -> int:
    from tests.support.postgres import PostgresServer, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        print("postgresql: initdb not found", file=sys.stderr)
        return 1
    server = PostgresServer(bin_dir)
    server.start()
    try:
        asyncio.run(measure(server.create_database()))
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
