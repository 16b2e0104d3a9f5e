"""The recordings catalog end to end (issue 11 items 2 and 3): a real baresip call on
the real Asterisk, StartRecording and StopRecording through the API, then the catalog
row and its media checked against the file Asterisk wrote."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import pytest

from tests.e2e.test_api_recording import A, Api, _one_call, _recording_file, _serve
from tests.support.audio import inspect_wav


@pytest.fixture
async def api(pbx, tmp_path) -> AsyncIterator[Api]:
    async for a in _serve(pbx, tmp_path):
        yield a


async def _until(api: Api, query: str, what: str, timeout: float = 20.0) -> list[dict]:
    """Poll the list until it holds something (the catalog is filled from events)."""
    for _ in range(int(timeout / 0.1)):
        rows = await _recordings(api, query)
        if rows:
            return rows
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout} s")


async def _recordings(api: Api, query: str = "") -> list[dict]:
    async with api.http.get(f"{api.base}/uapi/recordings/@me/{A}{query}",
                            headers=api.auth()) as r:
        if r.status == 204:
            return []
        assert r.status == 200, await r.text()
        return (await r.json())["entry"]


async def test_an_api_recording_is_catalogued_and_downloadable(api, phones, pbx) -> None:
    phone = await phones(A, tone_hz=600)
    await phone.dial("7778888")
    await phone.wait_event("CALL_ESTABLISHED")
    call = await _one_call(api)
    body = {"action": "StartRecording", "format": "wav", "phoneCallViewId": "01"}
    status, _ = await api.put(call["id"], body)
    assert status == 200
    (row,) = await _until(api, "", "the recording listed")
    assert row["state"] == "recording" and row["phoneCallId"] == call["id"]
    assert (row["startedBy"], row["phoneCallViewId"], row["format"]) == ("api", "01", "wav")
    assert row["appId"] and row["ownerId"] == call["ownerId"] == "3"
    (view,) = (await api.list())[0]["phoneCallView"]
    assert view["recordingId"] == row["id"]
    media = f"{api.base}/uapi/recordings/@me/{A}/{row['id']}/media"
    async with api.http.get(media, headers=api.auth()) as r:
        assert r.status == 409 and (await r.json())["error"]["code"] == "rec_in_progress"

    await asyncio.sleep(2.0)
    status, _ = await api.put(call["id"], {"action": "StopRecording", "phoneCallViewId": "01"})
    assert status == 200
    await phone.hangup()

    (row,) = await _until(api, "?state=completed", "the recording completed")
    path = _recording_file(pbx, call, "01", "wav")
    data = path.read_bytes()
    assert row["size"] == len(data)
    assert row["sha256"] == hashlib.sha256(data).hexdigest()
    assert abs(row["duration"] - inspect_wav(path).duration) < 0.01
    assert row["stopped"] >= row["started"]
    async with api.http.get(media, headers=api.auth()) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "audio/wav"
        assert await r.read() == data
    async with api.http.get(media, headers={**api.auth(), "Range": "bytes=100-199"}) as r:
        assert r.status == 206 and await r.read() == data[100:200]
