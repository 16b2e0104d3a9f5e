"""The recordings catalog end to end (issue 11 items 2 and 3): a real baresip call on
the real Asterisk, StartRecording, PauseRecording, ResumeRecording and StopRecording
through the API, then the catalog row and its media checked against the file Asterisk
wrote: the same bytes (full, ranged, revalidated), decoded, silent in the pause the row
lists and holding both parties around it."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import time
from collections.abc import AsyncIterator

import pytest

from tests.e2e.test_api_recording import (
    MILLIWATT_HZ,
    A,
    Api,
    _one_call,
    _recording_file,
    _serve,
)
from tests.support.audio import (
    SILENCE_WINDOW,
    WAVE_FORMAT_GSM610,
    WAVE_FORMAT_PCM,
    WavInfo,
    assert_length,
    assert_tone,
    inspect_wav,
    silent_runs,
    window_rms,
)

OWN_HZ = 600  # the phone's tone; the far end (7778899) plays MILLIWATT_HZ


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


# ------------------------------------------------------ start, pause, resume, stop
# Per format: the file's suffix, its WAVE format tag, the media type served, and the RMS
# under which a 100 ms window is the pause's silence. A muted MixMonitor writes zeros:
# PCM keeps them exact; GSM 6.10 decodes them to a steady hiss (measured: RMS 15.8), far
# under the call's two tones (near 19,000 in PCM).
FORMATS = {
    "wav": ("wav", WAVE_FORMAT_PCM, "audio/wav", 1.0),
    "wav49": ("WAV", WAVE_FORMAT_GSM610, "audio/x-wav", 50.0),
}


def _epoch(when: str) -> float:
    return dt.datetime.fromisoformat(when).timestamp()


async def _start_pause_resume_stop(api: Api, phones, fmt: str) -> tuple[dict, dict]:
    """A ~6 s recording of a real call with a 2 s pause in the middle; the stopwatch
    around each request (`<action>` before it is sent, `<action>.done` once answered)."""
    phone = await phones(A, tone_hz=OWN_HZ)
    await phone.dial("7778899")
    await phone.wait_event("CALL_ESTABLISHED")
    call = await _one_call(api)
    marks: dict[str, float] = {}

    async def act(action: str, **extra: str) -> None:
        marks[action] = time.monotonic()
        status, body = await api.put(call["id"], {"action": action,
                                                 "phoneCallViewId": "01", **extra})
        marks[f"{action}.done"] = time.monotonic()
        assert status == 200, body

    await act("StartRecording", format=fmt)
    for action in ("PauseRecording", "ResumeRecording", "StopRecording"):
        await asyncio.sleep(2.0)
        await act(action)
    await phone.hangup()
    return call, marks


async def _check_media(api: Api, row: dict, data: bytes, content_type: str) -> None:
    """The media route serves the file's bytes: whole, a range, and a revalidation."""
    media = f"{api.base}/uapi/recordings/@me/{A}/{row['id']}/media"
    async with api.http.get(media, headers=api.auth()) as r:
        assert r.status == 200 and r.headers["Content-Type"] == content_type, r.headers
        assert int(r.headers["Content-Length"]) == len(data)
        assert r.headers["Accept-Ranges"] == "bytes" and r.headers["Last-Modified"]
        etag = r.headers["ETag"]
        assert await r.read() == data
    async with api.http.get(media, headers={**api.auth(), "Range": "bytes=100-199"}) as r:
        assert r.status == 206, r.status
        assert r.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
        assert await r.read() == data[100:200]
    async with api.http.get(media, headers={**api.auth(), "If-None-Match": etag}) as r:
        assert r.status == 304 and await r.read() == b""


def _check_pause(info: WavInfo, row: dict, marks: dict, threshold: float) -> None:
    """One silent stretch, exactly where the row's one paused interval is, as long as
    the pause; both parties before and after it."""
    window = SILENCE_WINDOW
    rms = window_rms(info.samples, info.sample_rate, window)
    runs = silent_runs(rms, threshold)
    assert len(runs) == 1, (runs, [round(r) for r in rms])
    first, end = runs[0]
    silent = (end - first) * window
    # Between what the stopwatch around the pause and resume answers allows; whole
    # windows are counted, so up to one window of each edge is not; and MixMonitor applies
    # a mute per audio frame (20 ms) in its own thread, so the pause's first edge may land
    # up to a frame after the answer that acknowledged it.
    shortest = marks["ResumeRecording"] - marks["PauseRecording.done"] - 2 * window - 0.02
    longest = marks["ResumeRecording.done"] - marks["PauseRecording"] + window
    assert shortest <= silent <= longest, (silent, runs, marks)
    (span,) = row["paused"]
    paused_from, paused_to = _epoch(span["from"]), _epoch(span["to"])
    # The row's times are whole seconds (each truncated): a second of slack, and a window.
    assert abs((paused_to - paused_from) - silent) <= 1.0 + window, (span, silent)
    offset = paused_from - _epoch(row["started"])
    assert abs(offset - first * window) <= 1.0 + window, (span, row["started"], first)
    size = int(info.sample_rate * window)
    for part, what in ((info.samples[: first * size], "before the pause"),
                       (info.samples[end * size :], "after the pause")):
        assert_tone(part, OWN_HZ, f"{what}: the phone")
        assert_tone(part, MILLIWATT_HZ, f"{what}: the far end")


@pytest.mark.parametrize("fmt", list(FORMATS))
async def test_a_paused_recording_is_served_whole_and_silent_in_its_pause(
    api, phones, pbx, fmt: str,
) -> None:
    suffix, format_tag, content_type, threshold = FORMATS[fmt]
    call, marks = await _start_pause_resume_stop(api, phones, fmt)
    (row,) = await _until(api, f"?phoneCallId={call['id']}&state=completed",
                          "the recording completed")
    assert row["format"] == fmt and len(row["paused"]) == 1, row
    assert row["started"] <= row["paused"][0]["from"] <= row["paused"][0]["to"] <= \
        row["stopped"], row
    path = _recording_file(pbx, call, "01", suffix)
    data = path.read_bytes()
    assert (row["size"], row["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    await _check_media(api, row, data, content_type)

    # What was served is the file (byte-equal above): decode it.
    info = inspect_wav(path, pbx.root)
    assert (info.format_tag, info.channels, info.sample_rate) == (format_tag, 1, 8000)
    if format_tag == WAVE_FORMAT_GSM610:
        # 65 bytes hold 320 samples; sox decodes every one of them.
        assert len(info.samples) == round(info.duration * 8000), (len(info.samples), info)
    assert abs(row["duration"] - info.duration) < 0.05, (row["duration"], info.duration)
    # The call's length: the recording ran from the start's request to the stop's answer.
    assert_length(info, slept=6.0, recorded=marks["StopRecording.done"] - marks["StartRecording"])
    _check_pause(info, row, marks, threshold)
