"""Replicas write the same catalog rows (issue 16, item 2): the same id from the same
run, whoever saw it, and a write never moves a row back; on both backends. And the
advisory locks replicas share, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses

from pbx_bridge.recordings.catalog import RecordingRow, run_id
from pbx_bridge.recordings.store import RecordingStore
from pbx_bridge.storage import Migrate, open_database
from pbx_bridge.storage.coordination import VIEW, Coordination
from pbx_bridge.storage.url import parse_url


def test_a_run_has_one_id_whichever_way_a_replica_saw_it() -> None:
    # MixMonitorStart's MIXMONITOR_FILENAME (absolute) and a resync's PBX_REC (relative)
    event = run_id("1796.0", "/var/spool/monitor/3/0003*210/2026-11-30/a-01-101010.wav", 5.0)
    resync = run_id("1796.0", "3/0003*210/2026-11-30/a-01-101010.wav", 7.0)
    assert event == resync
    assert run_id("1796.1", "3/0003*210/2026-11-30/a-01-101010.wav", 7.0) != event
    assert run_id("1796.0", None, 5.0) != run_id("1796.0", None, 6.0)


def test_a_row_never_goes_back(database_url: str) -> None:
    db = open_database(database_url, migrate=Migrate.UPGRADE)
    store = RecordingStore(db)
    running = RecordingRow(id="r-1", extension="0003*210", call_id="c", view_id="01",
                           started=1.0, channel="u", file="f.wav")
    stopped = dataclasses.replace(running, stopped=3.0)
    done = dataclasses.replace(stopped, state="completed", duration=2.0)
    store.save(running)
    store.save(done)  # the replica that got there first finished it
    store.save(stopped)  # the other one, behind: no effect
    store.save(running)
    assert store.get("r-1") == done
    store.save(dataclasses.replace(done, state="missing", duration=None))
    assert store.get("r-1").state == "missing"  # finished -> finished: the reconciler's
    assert len(store.known()) == 1
    db.close()


def test_view_locks_order_two_replicas(postgres_server) -> None:
    async def run() -> list[str]:
        url = parse_url(postgres_server.create_database())
        a, b = Coordination.for_database(url), Coordination.for_database(url)
        order: list[str] = []

        async def holder(co: Coordination, name: str) -> None:
            async with co.hold(VIEW, "call", "0003*210"):
                order.append(name + " in")
                await asyncio.sleep(0.1)
                order.append(name + " out")

        await asyncio.gather(holder(a, "a"), holder(b, "b"))
        assert await a.lead("sweep") and not await b.lead("sweep")
        await a.close()  # the leader's session ends: the other takes over, once the
        for _ in range(100):  # server has seen the session go (asynchronously)
            if await b.lead("sweep"):
                break
            await asyncio.sleep(0.05)
        assert await b.lead("sweep")
        await b.close()
        return order

    order = asyncio.run(run())
    assert order in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])
