"""GET /uapi/events (CONTRACT section 7, "Stream") through the real aiohttp server and a
real aiohttp client: events written by the real events feature (its history in SQLite),
the token's access rules, ``?types=``, ``Last-Event-ID`` resume (nothing missed, nothing
twice), the history gap, heartbeats, a revoked token, and back-pressure: a client that
stops reading is cut after ``stream_queue`` events, its queue never above that."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from pbx_bridge.config import EventsSettings
from pbx_bridge.events.model import Draft, event_id
from tests.support.sse import SseReader
from tests.unit.api_support import Api, error_of

A, B, JANE, FOREIGN = "0003*210", "0003*211", "0003*213", "0004*210"
PATH = "/uapi/events"
FAST = EventsSettings(stream_heartbeat=0.3, stream_queue=20, stream_send_timeout=30.0)


@pytest.fixture
async def api(aiohttp_client, tmp_path, monkeypatch) -> Api:
    api = await Api.start(aiohttp_client, tmp_path, events=FAST)
    api.ready(monkeypatch)
    return api


async def emit(api: Api, *extensions: str, kind: str = "call.ringing",
               size: int = 0) -> None:
    """Events of these extensions, through the events feature (numbered, stored, handed
    to its sinks), and wait until they are stored."""
    api.bridge.events.emit([
        Draft(type=kind, time=1_800_000_000.0, extension=ext, phone_call_id=f"c{i:019d}",
              data={"n": i, "pad": "x" * size})
        for i, ext in enumerate(extensions)
    ])
    await api.bridge.events.drained()


async def connect(api: Api, who: str = "john", query: str = "",
                  last: str | None = None) -> SseReader:
    headers = api.apps.auth(who)
    if last is not None:
        headers["Last-Event-ID"] = last
    resp = await api.client.get(PATH + query, headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"] == "text/event-stream"
    reader = SseReader(resp)
    await until(lambda: len(api.bridge.stream.clients) > 0)
    return reader


async def until(predicate: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def history(api: Api, extensions: set[str] | None = None) -> list[dict[str, Any]]:
    docs = api.bridge.events.store.after(0, 100_000)
    return [d for d in docs if extensions is None or d["extension"] in extensions]


async def test_each_token_sees_its_own_extensions_only(api: Api) -> None:
    streams = {who: await connect(api, who) for who in ("john", "org3", "other", "admin")}
    await until(lambda: len(api.bridge.stream.clients) == 4)
    await emit(api, A, FOREIGN, B, JANE, FOREIGN, A)
    seen = {}
    for who, count in (("john", 3), ("org3", 4), ("other", 2), ("admin", 6)):
        seen[who] = [m.json["extension"] for m in await streams[who].events(count)]
    assert seen == {"john": [A, B, A], "org3": [A, B, JANE, A],
                    "other": [FOREIGN, FOREIGN], "admin": [A, FOREIGN, B, JANE, FOREIGN, A]}
    # No more for john: the next thing john gets is the one after a new own event.
    await emit(api, FOREIGN, A)
    (nxt,) = await streams["john"].events(1)
    assert nxt.json["extension"] == A and nxt.json["seq"] == 8


async def test_the_message_is_the_event(api: Api) -> None:
    stream = await connect(api)
    await emit(api, A)
    (msg,) = await stream.events(1)
    (stored,) = history(api)
    assert msg.event == "call.ringing" and msg.id == stored["id"] == event_id(1)
    assert msg.json == stored


async def test_types_filter(api: Api) -> None:
    stream = await connect(api, query="?types=recording.started,call.hangup")
    await emit(api, A, kind="call.ringing")
    await emit(api, A, kind="call.hangup")
    await emit(api, A, kind="recording.started")
    got = [m.event for m in await stream.events(2)]
    assert got == ["call.hangup", "recording.started"]


async def test_resume_with_last_event_id_misses_nothing_and_repeats_nothing(api: Api) -> None:
    stream = await connect(api)
    await emit(api, A, B, FOREIGN, A)
    first = await stream.events(2)
    stream.resp.close()  # gone mid-stream, two of john's events unread
    await until(lambda: not api.bridge.stream.clients)
    await emit(api, FOREIGN, B, A)  # while disconnected
    again = await connect(api, last=first[-1].id)
    await emit(api, A)  # live after the replay
    rest = await again.events(4)
    union = [m.json for m in first + rest]
    assert union == history(api, {A, B}), [m["seq"] for m in union]
    assert len({m["id"] for m in union}) == len(union)


async def test_a_quiet_stream_names_its_start_so_a_reconnect_misses_nothing(api: Api) -> None:
    await emit(api, A, A)  # before: not part of a new stream
    stream = await connect(api)
    reading = asyncio.create_task(stream.next())  # no message comes: just the id line
    await until(lambda: stream.last_event_id is not None)
    reading.cancel()
    assert stream.last_event_id == event_id(2)
    stream.resp.close()
    await until(lambda: not api.bridge.stream.clients)
    await emit(api, B)
    again = await connect(api, last=stream.last_event_id)
    (msg,) = await again.events(1)
    assert msg.json["seq"] == 3 and msg.json["extension"] == B


async def test_an_id_older_than_the_history_says_so_first(api: Api) -> None:
    await emit(api, A, A, A, A)
    gone = api.bridge.events.store.prune(older_than=2e9, keep=2)  # seq 1 and 2 dropped
    assert gone == 2
    stream = await connect(api, last=event_id(1))
    gap, *rest = await stream.events(3)
    assert gap.event == "history.gap" and gap.id is None
    assert gap.json == {"lastEventId": event_id(1), "reason": "expired", "missed": 1,
                        "lastKept": event_id(4)}
    assert [m.json["seq"] for m in rest] == [3, 4]


async def test_an_id_of_another_history_says_so_and_replays_what_is_kept(api: Api) -> None:
    await emit(api, A, A)
    stream = await connect(api, last=event_id(99))
    gap, *rest = await stream.events(3)
    assert gap.event == "history.gap" and gap.json["reason"] == "unknown"
    assert [m.json["seq"] for m in rest] == [1, 2]


async def test_heartbeat_comments(api: Api) -> None:
    stream = await connect(api)
    task = asyncio.create_task(stream.next())
    await until(lambda: stream.comments.count("ping") >= 2)
    task.cancel()


async def test_a_revoked_token_ends_the_stream(api: Api) -> None:
    stream = await connect(api)
    assert api.directory.revoke_token(api.apps.token["john"])
    async with asyncio.timeout(10):
        assert await stream.next() is None  # the stream ends
    await until(lambda: not api.bridge.stream.clients)


@pytest.mark.parametrize(("headers", "query", "want"), [
    ({}, "", (401, "unauthorized")),
    ({"Last-Event-ID": "12"}, "", (400, "event_id_invalid")),
    ({"Last-Event-ID": "evt-00000000000000zz"}, "", (400, "event_id_invalid")),
    ({}, "?types=call.ring", (400, "event_type_invalid")),
    ({}, "?since=1", (400, "request_invalid")),
])
async def test_refusals(api: Api, headers: dict[str, str], query: str,
                        want: tuple[int, str]) -> None:
    auth = {} if want[1] == "unauthorized" else api.apps.auth("john")
    resp = await api.client.get(PATH + query, headers={**auth, **headers})
    assert await error_of(resp) == want


async def test_a_client_that_stops_reading_is_cut_and_memory_is_bounded(api: Api) -> None:
    hub = api.bridge.stream
    sock = await _silent_client(api)
    try:
        await until(lambda: len(hub.clients) == 1)
        peak = 0
        for _ in range(400):  # 400 x 64 KiB: far more than socket buffers hold
            await emit(api, A, size=64 * 1024)
            peak = max(peak, hub.queued())
            if hub.cut_total:
                break
        assert hub.cut_total == 1 and not hub.clients
        assert peak <= FAST.stream_queue
        metrics = await (await api.client.get("/metrics", headers=api.apps.auth("admin"))).text()
        assert "pbx_bridge_event_stream_cut_total 1.0" in metrics
        assert "pbx_bridge_event_stream_clients 0.0" in metrics
    finally:
        sock.close()


async def _silent_client(api: Api) -> socket.socket:
    """A client that sends its request and never reads a byte (small receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (api.client.host, api.client.port))
    request = (f"GET {PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
               f"{api.apps.token['john']}\r\n\r\n").encode()
    await loop.sock_sendall(sock, request)
    return sock


async def test_metrics_count_connected_clients(api: Api) -> None:
    await connect(api)
    metrics = await (await api.client.get("/metrics", headers=api.apps.auth("admin"))).text()
    assert "pbx_bridge_event_stream_clients 1.0" in metrics


async def test_the_openapi_document_lists_the_stream(api: Api) -> None:
    doc = await (await api.client.get("/uapi/openapi.json")).json()
    op = doc["paths"]["/uapi/events"]["get"]
    assert op["operationId"] == "streamEvents"
    assert {p["name"] for p in op["parameters"]} == {"types", "Last-Event-ID"}
    assert "text/event-stream" in op["responses"]["200"]["content"]
    assert "event_id_invalid" in op["responses"]["400"]["description"]
