"""Background writers do not pile up (issue 15's memory finding).

Under a steady request load (the bench's 50 clients), rows and events are queued
faster than a write can wait for a quiet moment. The catalog and the events feature
used to spawn one writer task per queued row or event, each waiting on the writer's
lock only to find its row already written by an earlier batch: tens of thousands of
pending tasks (measured: 35,000 after 5 s of the bench's floor throughput, the serve
process's RSS 96 -> 260 MiB, never given back). One writer waiting for its turn is
enough: whatever is queued meanwhile joins its batch. Through the real app, its
catalog and events features on SQLite, with a request held in flight."""

from __future__ import annotations

import asyncio
from collections import Counter

from pbx_bridge.recordings.catalog import RecordingRow
from pbx_bridge.recordings.store import RecordingQuery
from tests.unit.api_support import Api
from tests.unit.test_quiet_writes import EXT, FILE, T0, SlowRequest

RECORDINGS = 60


def pending_writers() -> Counter[str]:
    """The live tasks by their coroutine's name (the writers' among them)."""
    return Counter(getattr(t.get_coro(), "__qualname__", "") for t in asyncio.all_tasks()
                   if not t.done())


def start_recordings(api: Api, n: int) -> None:
    """``n`` MixMonitorStarts Asterisk would send, one per channel."""
    for i in range(n):
        ch = api.pbx.channel(f"PJSIP/{EXT}", state=6)
        ev = {"Event": "MixMonitorStart", "Channel": ch.name, "Uniqueid": ch.uniqueid,
              "Linkedid": ch.linkedid,
              "ChanVariable(PBX_REC)": f"{T0 + i:.3f}|{FILE.replace('01', f'{i:02d}')}"}
        api.pbx.feed(ev)
        api.bridge.recordings.on_event(ev)


async def rows(api: Api) -> list[RecordingRow]:
    return await api.bridge.recordings.find(RecordingQuery(extensions=(EXT,)))


async def test_queued_writes_share_one_waiting_writer(aiohttp_client, tmp_path,
                                                      monkeypatch) -> None:
    api = await Api.start(aiohttp_client, tmp_path, write_delay=1.0)
    api.ready(monkeypatch)
    async with SlowRequest(api) as request:  # the writes wait for it
        start_recordings(api, RECORDINGS)
        await asyncio.sleep(0.05)  # every spawned task has run up to its wait
        # Two queues (the catalog's rows, the events), each with at most one writer
        # waiting and one writing (core/quiet.py's QuietWriter); 60 + 60 before.
        assert 1 <= pending_writers()["QuietWriter._run"] <= 4
        await request.release()
    await api.bridge.recordings.drained()
    await api.bridge.events.drained()
    # Nothing lost: every row and every event stored, once.
    assert len(await rows(api)) == RECORDINGS
    started = [d for d in api.bridge.events.store.after(0) if d["type"] == "recording.started"]
    assert len(started) == RECORDINGS
    assert pending_writers()["QuietWriter._run"] == 0
