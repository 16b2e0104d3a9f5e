"""The live event stream end to end (issue 12, done-when "SSE"): real baresip calls on the
real Asterisk, GET /uapi/events through the real HTTP server. A client reads John's
stream, disconnects mid-call, reconnects with Last-Event-ID: the union of what it read
is exactly John's events in the bridge's history, in order, no gap, no duplicate. A
call of another organization runs at the same time: its events are in the history and
on that organization's stream, never on John's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.e2e.test_api_recording import A, Api, _one_call, _serve
from tests.support.bridge import eventually
from tests.support.sse import Message, SseReader

FOREIGN = "0004*210"  # organization 4, user 20
JOHNS = {A, "0003*211"}


@pytest.fixture
async def api(pbx, tmp_path) -> AsyncIterator[Api]:
    async for a in _serve(pbx, tmp_path):
        yield a


async def _open(api: Api, token: str, last: str | None = None) -> SseReader:
    headers = api.auth(token)
    if last is not None:
        headers["Last-Event-ID"] = last
    resp = await api.http.get(f"{api.base}/uapi/events", headers=headers,
                              timeout=aiohttp.ClientTimeout(total=None, sock_read=None))
    assert resp.status == 200, await resp.text()
    return SseReader(resp)


async def _until(reader: SseReader, want: Any, got: list[Message]) -> None:
    try:
        async with asyncio.timeout(30):
            while not want(got):
                message = await reader.next()
                assert message is not None, "the stream ended"
                got.append(message)
    except TimeoutError:
        raise AssertionError(f"not reached within 30 s; got {_types(got)}") from None


def _history(api: Api, extensions: set[str]) -> list[dict[str, Any]]:
    return [d for d in api.bridge.events.store.after(0, 100_000)
            if d["extension"] in extensions]


def _types(messages: list[Message]) -> list[str]:
    return [m.event for m in messages]


async def test_reconnect_with_last_event_id_misses_nothing_and_sees_no_foreign_call(
        api: Api, phones) -> None:
    foreign_token = api.token_for(20)
    first_reader = await _open(api, api.token)
    foreign_reader = await _open(api, foreign_token)
    await eventually(lambda: len(api.bridge.stream.clients) == 2, what="two stream clients")

    phone = await phones(A, tone_hz=600)
    other = await phones(FOREIGN, tone_hz=900)
    await other.dial("7778888")
    await phone.dial("7778888")
    await phone.wait_event("CALL_ESTABLISHED")
    await other.wait_event("CALL_ESTABLISHED")
    first: list[Message] = []
    await _until(first_reader, lambda got: "call.answered" in _types(got), first)
    first_reader.resp.close()  # gone mid-call
    await eventually(lambda: len(api.bridge.stream.clients) == 1, what="the first one gone")

    call = await _one_call(api)  # while disconnected: the recording starts and pauses
    for action in ("StartRecording", "PauseRecording"):
        status, body = await api.put(call["id"], {"action": action, "phoneCallViewId": "01"})
        assert status == 200, body
        # some audio before the pause: a run muted before its first frame leaves a file
        # with no audio, which the catalog rightly calls failed (no recording.completed)
        await asyncio.sleep(1.0)
    await eventually(lambda: "recording.paused" in [d["type"] for d in _history(api, JOHNS)],
                     what="recording.paused in the history")

    second_reader = await _open(api, api.token, last=first[-1].id)
    status, body = await api.put(call["id"], {"action": "StopRecording",
                                              "phoneCallViewId": "01"})
    assert status == 200, body
    await phone.hangup()
    await other.hangup()

    def done(got: list[Message]) -> bool:
        return {"call.hangup", "recording.completed"} <= set(_types(got))
    second: list[Message] = []
    await _until(second_reader, done, second)
    await asyncio.sleep(1.0)  # anything late would show up in the history below
    second_reader.resp.close()

    union = [m.json for m in first + second]
    johns = _history(api, JOHNS)
    assert union == johns, (_types(first), _types(second), [d["type"] for d in johns])
    assert len({e["id"] for e in union}) == len(union)
    assert [e["seq"] for e in union] == sorted(e["seq"] for e in union)
    assert "recording.started" in [e["type"] for e in union]
    assert "recording.started" not in _types(first)  # it came from the replay
    print("\nSSE e2e:", _types(first), "| reconnect |", _types(second))

    # Access: the foreign call is in the history, never on John's stream, and its own
    # organization's stream has it (and nothing of John's).
    foreign = _history(api, {FOREIGN})
    assert {"call.ringing", "call.answered"} <= {d["type"] for d in foreign}
    assert all(e["extension"] in JOHNS for e in union)
    theirs: list[Message] = []
    await _until(foreign_reader, lambda got: "call.hangup" in _types(got), theirs)
    assert {m.json["extension"] for m in theirs} == {FOREIGN}
    assert [m.json for m in theirs] == foreign[:len(theirs)]
    foreign_reader.resp.close()
