"""The event stream's back-pressure, measured (docs/reliability.md, "Event stream: clients
that stop reading"): clients that send their request and never read a byte, while the
events feature produces many events (numbered, stored in SQLite, handed to the stream
as in service), next to one client that reads everything. Every silent client is cut;
the events waiting in the queues never exceed clients x ``stream_queue``; the process's
RSS grows by a bounded amount, far below what the silent clients were sent; the
reading client gets every event, in order. No Asterisk: the PBX plays no part here.

Sizes: PBX_BRIDGE_SSE_SILENT [20] silent clients, PBX_BRIDGE_SSE_EVENTS [20000] events
of PBX_BRIDGE_SSE_EVENT_BYTES [1024] bytes of data each."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

from pbx_bridge.config import EventsSettings
from pbx_bridge.events.model import Draft
from tests.reliability.support import report
from tests.support.sse import SseReader
from tests.unit.api_support import Api

SILENT = int(os.environ.get("PBX_BRIDGE_SSE_SILENT", "20"))
EVENTS = int(os.environ.get("PBX_BRIDGE_SSE_EVENTS", "20000"))
SIZE = int(os.environ.get("PBX_BRIDGE_SSE_EVENT_BYTES", "1024"))
BATCH = 100
A = "0003*210"


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def silent_client(api: Api) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (api.client.host, api.client.port))
    await loop.sock_sendall(sock, (
        f"GET /uapi/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        f"{api.apps.token['john']}\r\n\r\n").encode())
    return sock


async def test_clients_that_stop_reading_are_cut_and_memory_stays_bounded(
        aiohttp_client, tmp_path, monkeypatch) -> None:
    settings = EventsSettings()  # the shipped stream_queue (1,000) and timeouts
    api = await Api.start(aiohttp_client, tmp_path, events=settings)
    api.ready(monkeypatch)
    hub = api.bridge.stream
    socks = [await silent_client(api) for _ in range(SILENT)]
    resp = await api.client.get("/uapi/events", headers=api.apps.auth("john"))
    reader = SseReader(resp)
    async with asyncio.timeout(30):
        while len(hub.clients) < SILENT + 1:
            await asyncio.sleep(0.01)
    got: list[int] = []

    async def read_all() -> None:
        while len(got) < EVENTS:
            message = await reader.next()
            assert message is not None
            got.append(message.json["seq"])
    reading = asyncio.create_task(read_all())
    before = peak_rss = rss_kib()
    peak_queued = 0
    for first in range(0, EVENTS, BATCH):
        api.bridge.events.emit([
            Draft(type="call.ringing", time=1.8e9, extension=A, phone_call_id=f"c{i:019d}",
                  data={"n": i, "pad": "x" * SIZE})
            for i in range(first, min(first + BATCH, EVENTS))
        ])
        await api.bridge.events.drained()
        peak_queued = max(peak_queued, hub.queued())
        peak_rss = max(peak_rss, rss_kib())
        await asyncio.sleep(0)
    async with asyncio.timeout(120):
        await reading
    after = rss_kib()
    for sock in socks:
        sock.close()

    sent_to_silent_mib = SILENT * EVENTS * SIZE / 2**20
    report("event_stream_slow_clients", silent_clients=SILENT, events=EVENTS,
           event_bytes=SIZE, stream_queue=settings.stream_queue, cut=hub.cut_total,
           peak_queued_events=peak_queued, rss_before_mib=round(before / 1024, 1),
           rss_peak_mib=round(peak_rss / 1024, 1), rss_after_mib=round(after / 1024, 1),
           rss_growth_mib=round((peak_rss - before) / 1024, 1),
           produced_for_silent_clients_mib=round(sent_to_silent_mib, 1),
           reader_got=len(got))
    assert hub.cut_total == SILENT  # every silent client, and only those
    assert peak_queued <= (SILENT + 1) * settings.stream_queue
    assert got == sorted(got) and len(got) == len(set(got)) == EVENTS
    # Bounded, with large slack: a tenth of what an unbounded buffer would have held.
    assert (peak_rss - before) / 1024 < sent_to_silent_mib / 10
