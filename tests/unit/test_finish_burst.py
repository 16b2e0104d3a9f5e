"""A burst of recording stops with replicas (issue 15's PostgreSQL bench).

The bench on PostgreSQL stopped thousands of recordings within seconds (the bridge
catalogues every MixMonitor run, whoever started it). Each stopped row was finished at
once by a task of its own: a row lock on the locks' connection (ahead of the requests'
view locks), a read under the writer's lock (ahead of its batches), then a poll every
10 ms until its row was written. The event loop was too busy to read the AMI link:
its Ping went unanswered, the link dropped, and a StartRecording answered 504. Now at
most `_FINISHING_AT_ONCE` rows are finished at once, and a waiter wakes once per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from pbx_bridge.core.quiet import Quiet, QuietWriter
from pbx_bridge.recordings.feature import _FINISHING_AT_ONCE
from pbx_bridge.recordings.retention import FINISHED
from pbx_bridge.recordings.store import RecordingQuery
from pbx_bridge.storage.coordination import ROW
from tests.unit.api_support import Api
from tests.unit.test_quiet_writes import EXT, FILE, T0

ROWS = 150


def recorded_channels(api: Api, n: int) -> list[dict[str, str]]:
    """``n`` channels, each with a MixMonitorStart Asterisk would send; their stops."""
    stops = []
    for i in range(n):
        ch = api.pbx.channel(f"PJSIP/{EXT}", state=6)
        ids = {"Channel": ch.name, "Uniqueid": ch.uniqueid, "Linkedid": ch.linkedid}
        start = {"Event": "MixMonitorStart", **ids,
                 "ChanVariable(PBX_REC)": f"{T0 + i:.3f}|{FILE.replace('01', f'{i:03d}')}"}
        api.pbx.feed(start)
        api.bridge.recordings.on_event(start)
        stops.append({"Event": "MixMonitorStop", **ids})
    return stops


async def test_a_burst_of_stops_is_finished_a_bounded_number_at_a_time(
    aiohttp_client, tmp_path, monkeypatch, postgres_server,
) -> None:
    api = await Api.start(aiohttp_client, tmp_path, write_delay=0.05,
                          database_url=postgres_server.create_database())
    api.ready(monkeypatch)
    catalog = api.bridge.recordings
    assert catalog.coordination.shared  # replicas' rules: a row lock, a wait for its write
    holding = most = 0
    hold = catalog.coordination.hold

    @contextlib.asynccontextmanager
    async def counted(kind: int, *parts: str) -> AsyncIterator[None]:
        nonlocal holding, most
        async with hold(kind, *parts):
            holding += kind == ROW
            most = max(most, holding)
            try:
                yield
            finally:
                holding -= kind == ROW

    monkeypatch.setattr(catalog.coordination, "hold", counted)
    stops = recorded_channels(api, ROWS)
    await catalog.drained()
    for ev in stops:  # all at once, as a mass hang-up or the bench's floods send them
        api.pbx.feed(ev)
        catalog.on_event(ev)

    async def finished() -> int:
        rows = await catalog.find(RecordingQuery(extensions=(EXT,)))
        return sum(r.state in FINISHED for r in rows)

    async with asyncio.timeout(60):
        while await finished() < ROWS:  # none lost on the way (no file: "missing")
            await asyncio.sleep(0.05)
    assert 1 < most <= _FINISHING_AT_ONCE
    await api.bridge.events.drained()


async def test_a_waiter_wakes_once_per_batch_not_every_few_milliseconds() -> None:
    quiet = Quiet()
    written: list[int] = []
    queued: list[int] = []

    async def write() -> None:
        written.extend(queued)
        queued.clear()

    writer = QuietWriter(quiet, 0.3, write)
    asks = 0

    def done() -> bool:
        nonlocal asks
        asks += 1
        return 7 in written

    quiet.enter()  # a request in flight: the batch waits its full delay (0.3 s)
    queued.append(7)
    writer.due(asyncio.get_running_loop().create_task)
    await writer.until(done)
    quiet.leave()
    # Asked when the wait began and after the one batch; a 10 ms poll asked ~30 times.
    assert asks == 2
