"""Background writes yield to requests (core/quiet.py, issue 15): the recordings
catalog's rows and the event history wait for a moment with no HTTP request in flight,
``[database] write_delay`` at most, and lose nothing. Through the real app and server,
a real client whose request body arrives slowly (the request is in flight meanwhile),
and the real catalog and events features on SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pbx_bridge.core.quiet import Quiet
from pbx_bridge.recordings.catalog import RecordingRow
from pbx_bridge.recordings.store import RecordingQuery
from tests.unit.api_support import Api

EXT = "0003*210"
T0 = 1_790_000_000.0
FILE = "3/0003*210/2026-11-30/f-01-062040.wav"


async def until(predicate: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


class Writes:
    """What the catalog and the events feature wrote, and how many requests were in
    flight at that moment (the real stores, counted)."""

    def __init__(self, api: Api) -> None:
        self.log: list[tuple[str, int]] = []
        quiet = api.bridge.quiet
        catalog, events = api.bridge.recordings.store, api.bridge.events.store
        save_all, append = catalog.save_all, events.append

        def saved(rows: list[RecordingRow]) -> None:
            self.log.append(("catalog", quiet.busy))
            save_all(rows)

        def appended(batch: list[Any], also: Any = None) -> list[Any]:
            self.log.append(("events", quiet.busy))
            return append(batch, also)

        catalog.save_all = saved  # type: ignore[method-assign]
        events.append = appended  # type: ignore[method-assign]


class SlowRequest:
    """A PUT whose body is held back until `release`: in flight from its first byte."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self._go = asyncio.Event()
        self.task: asyncio.Task[int] | None = None

    async def _body(self) -> AsyncIterator[bytes]:
        yield b'{"action": '
        await self._go.wait()
        yield b'"StartRecording"}'

    async def _put(self) -> int:
        headers = {**self.api.apps.auth("john"), "Content-Type": "application/json"}
        async with self.api.client.put(f"/uapi/phoneCalls/@me/{EXT}/1790000000000000001",
                                       data=self._body(), headers=headers) as resp:
            await resp.read()
            return resp.status

    async def __aenter__(self) -> SlowRequest:
        self.task = asyncio.create_task(self._put())
        await until(lambda: self.api.bridge.quiet.busy == 1)
        return self

    async def release(self) -> int:
        assert self.task is not None
        self._go.set()
        return await self.task

    async def __aexit__(self, *exc: object) -> None:
        if self.task is not None and not self.task.done():
            await self.release()


def start_recording(api: Api) -> None:
    """A MixMonitorStart Asterisk would send (the catalog starts a row, events follow)."""
    ch = api.pbx.channel(f"PJSIP/{EXT}", state=6)
    ev = {"Event": "MixMonitorStart", "Channel": ch.name, "Uniqueid": ch.uniqueid,
          "Linkedid": ch.linkedid, "ChanVariable(PBX_REC)": f"{T0:.3f}|{FILE}"}
    api.pbx.feed(ev)
    api.bridge.recordings.on_event(ev)


async def rows(api: Api) -> list[RecordingRow]:
    return await api.bridge.recordings.find(RecordingQuery(extensions=(EXT,)))


@pytest.fixture
async def api(aiohttp_client, tmp_path, monkeypatch) -> Api:
    # The longest delay allowed: a write seen while the request is held is no accident.
    api = await Api.start(aiohttp_client, tmp_path, write_delay=1.0)
    api.ready(monkeypatch)
    return api


async def test_writes_wait_until_no_request_is_in_flight(api: Api) -> None:
    writes = Writes(api)
    async with SlowRequest(api) as request:
        start_recording(api)
        await asyncio.sleep(0.3)  # the loop is free: only the request holds the writes
        assert writes.log == []
        status = await request.release()
    assert 400 <= status < 500  # refused (no such call): what matters is the answer
    await api.bridge.recordings.drained()
    await api.bridge.events.drained()
    assert sorted(writes.log) == [("catalog", 0), ("events", 0)]
    (row,) = await rows(api)
    assert row.file == FILE
    assert [d["type"] for d in api.bridge.events.store.after(0)] == ["recording.started"]


async def test_a_long_request_delays_the_writes_by_write_delay_at_most(
    aiohttp_client, tmp_path, monkeypatch
) -> None:
    api = await Api.start(aiohttp_client, tmp_path, write_delay=0.05)
    api.ready(monkeypatch)
    writes = Writes(api)
    async with SlowRequest(api):
        start_recording(api)
        await until(lambda: len(writes.log) == 2)  # written while the request still runs
        assert sorted(writes.log) == [("catalog", 1), ("events", 1)]
        assert len(await rows(api)) == 1


async def test_an_open_event_stream_is_not_a_request_in_flight(api: Api) -> None:
    resp = await api.client.get("/uapi/events", headers=api.apps.auth("john"))
    assert resp.status == 200
    await until(lambda: len(api.bridge.stream.clients) == 1)
    assert api.bridge.quiet.busy == 0
    writes = Writes(api)
    start_recording(api)
    await api.bridge.events.drained()
    assert ("events", 0) in writes.log
    line = b""
    async with asyncio.timeout(10):
        while not line.startswith(b"event: recording.started"):
            line = await resp.content.readline()
    resp.close()


async def test_a_graceful_stop_writes_what_waits(api: Api) -> None:
    async with SlowRequest(api) as request:
        start_recording(api)
        await asyncio.sleep(0.05)
        await api.bridge.close()  # while the request is still in flight
        assert len(await rows(api)) == 1
        assert [d["type"] for d in api.bridge.events.store.after(0)] == ["recording.started"]
        await request.release()


# --------------------------------------------------------------------------- Quiet itself


async def test_quiet_waits_for_the_last_request_or_the_delay() -> None:
    quiet = Quiet()
    await asyncio.wait_for(quiet.wait(10.0), 1.0)  # nothing in flight: at once
    quiet.enter()
    quiet.enter()
    waiting = asyncio.create_task(quiet.wait(10.0))
    quiet.leave()
    await asyncio.sleep(0.02)
    assert not waiting.done()  # one request is still in flight
    quiet.leave()
    await asyncio.wait_for(waiting, 1.0)
    quiet.enter()
    await asyncio.wait_for(quiet.wait(0.01), 1.0)  # bounded by the delay
    await asyncio.wait_for(quiet.wait(0), 1.0)  # 0: at once
    quiet.close()
    await asyncio.wait_for(quiet.wait(10.0), 1.0)  # stopping: at once
