"""PauseRecording / ResumeRecording end to end (issue 11 item 1): a real baresip phone in a
real call, the real HTTP server, and the file Asterisk wrote opened: start -> pause 2 s
-> resume -> stop on a ~6 s call is one file of the call's length whose paused stretch is
digital silence and whose other stretches hold both parties."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.e2e.test_api_recording import MILLIWATT_HZ, _one_call, _recording_file, _serve
from tests.support.audio import (
    SILENCE_WINDOW,
    assert_length,
    assert_tone,
    inspect_wav,
    silent_runs,
    wait_file_complete,
    window_rms,
)

OWN_HZ = 600  # the phone's tone; the far end (7778899) plays MILLIWATT_HZ
RATE = 8000
WINDOW = SILENCE_WINDOW


async def test_pause_and_resume_a_real_recording(pbx, phones, ami_log, tmp_path: Path) -> None:
    async for api in _serve(pbx, tmp_path):
        phone = await phones("0003*210", tone_hz=OWN_HZ)
        await phone.dial("7778899")
        await phone.wait_event("CALL_ESTABLISHED")
        call = await _one_call(api)

        t0 = time.monotonic()
        status, body = await api.put(call["id"], {"action": "StartRecording",
                                                 "phoneCallViewId": "01"})
        assert status == 200, body
        await asyncio.sleep(2.0)

        t_pause = time.monotonic()
        status, body = await api.put(call["id"], {"action": "PauseRecording",
                                                 "phoneCallViewId": "01"})
        t_paused = time.monotonic()
        assert status == 200, body
        view = body["phoneCallView"][0]
        assert view["recordingPaused"] >= view["recording"], view
        # Asterisk confirms it with its event, carrying the channel's stamp.
        mute = await ami_log.wait_for("MixMonitorMute", where=lambda e: e.get("State") == "1")
        assert mute["Direction"] == "both"
        assert mute["ChanVariable(PBX_RECPAUSED)"]
        # Idempotent: pausing again answers the same and sends Asterisk nothing.
        status, again = await api.put(call["id"], {"action": "PauseRecording",
                                                  "phoneCallViewId": "01"})
        assert status == 200 and again["phoneCallView"][0] == view
        # A bridge started now (a restart) reads the pause back from the channel.
        (tmp_path / "restarted").mkdir()
        async for fresh in _serve(pbx, tmp_path / "restarted"):
            (seen,) = (await fresh.list())[0]["phoneCallView"]
            assert seen["recordingPaused"] == view["recordingPaused"], seen
        assert (await api.list())[0]["phoneCallView"][0]["recordingPaused"] == \
            view["recordingPaused"]
        await asyncio.sleep(2.0 - (time.monotonic() - t_paused))

        t_resume = time.monotonic()
        status, body = await api.put(call["id"], {"action": "ResumeRecording",
                                                 "phoneCallViewId": "01"})
        t_resumed = time.monotonic()
        assert status == 200, body
        assert "recordingPaused" not in body["phoneCallView"][0], body
        assert body["phoneCallView"][0]["recording"] == view["recording"]
        await asyncio.sleep(2.0)

        status, body = await api.put(call["id"], {"action": "StopRecording",
                                                 "phoneCallViewId": "01"})
        recorded = time.monotonic() - t0
        assert status == 200, body
        assert "recording" not in body["phoneCallView"][0], body
        mutes = [e["State"] for e in ami_log.matching("MixMonitorMute")]
        assert mutes == ["1", "0"], mutes  # one pause, one resume: nothing more sent
        await phone.hangup()

    path = _recording_file(pbx, call, "01", "wav")
    await wait_file_complete(path)
    info = inspect_wav(path)
    # One file for the whole call: its timeline is the call's, pause included.
    assert_length(info, slept=6.0, recorded=recorded)
    assert info.duration >= 5.0, info.duration

    rms = window_rms(info.samples)
    runs = silent_runs(rms)
    # One silent stretch, as long as the pause (between what the stopwatch around the
    # pause and resume answers allows, a window of slack each side).
    assert len(runs) == 1, (runs, [round(r) for r in rms])
    first, end = runs[0]
    silent = (end - first) * WINDOW
    assert (t_resume - t_paused) - 2 * WINDOW <= silent <= (t_resumed - t_pause) + 2 * WINDOW, \
        (silent, runs)
    # Where the pause was: about 2 s into the file (a second of slack for the start).
    assert 1.0 <= first * WINDOW <= (t_paused - t0) + 0.5, (first, t_paused - t0)
    # Silent means digital silence there: exact zeros.
    size = int(RATE * WINDOW)
    assert not any(info.samples[(first) * size : end * size])
    # Before and after the pause: both parties, each found by its own frequency.
    before = info.samples[: first * size]
    after = info.samples[end * size :]
    for part, what in ((before, "before the pause"), (after, "after the pause")):
        assert_tone(part, OWN_HZ, f"{what}: the phone")
        assert_tone(part, MILLIWATT_HZ, f"{what}: the far end")
