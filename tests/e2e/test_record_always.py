"""Recording "always": Jane's 0003*213 records every call without anyone asking, from
the moment its view is answered, in the extension's format and the API's file naming;
no app may stop it; a bridge started in the middle of the call records it too."""

from __future__ import annotations

import asyncio
import time

from tests.e2e.test_api_recording import ISO, _mixmonitor_starts, _one_call, _serve
from tests.support.audio import WAVE_FORMAT_PCM, assert_length, recording_content
from tests.support.bridge import eventually

JANE = "0003*213"


def _files(pbx, call_id: str) -> list:
    return list((pbx.monitor_dir / "3" / JANE).glob(f"*/{call_id}-01-*.wav"))


async def test_every_call_is_recorded_and_cannot_be_stopped(pbx, phones, tmp_path,
                                                             ami_log) -> None:
    async for api in _serve(pbx, tmp_path):
        jane = api.token_for(13)
        phone = await phones(JANE, tone_hz=600)
        await phone.dial("7778888")
        await phone.wait_event("CALL_ESTABLISHED")
        t0 = time.monotonic()
        await ami_log.wait_for("MixMonitorStart")
        call = await _one_call(api, JANE, jane)
        (view,) = call["phoneCallView"]
        assert view["extension"] == JANE and ISO.match(view["recording"]), view

        # Not on demand: the app can neither start nor stop it.
        for action in ("StartRecording", "StopRecording"):
            status, body = await api.put(call["id"], {"action": action,
                                                     "phoneCallViewId": "01"}, JANE, jane)
            assert (status, body["error"]["code"]) == (403, "pc_recording_disabled"), body
        await asyncio.sleep(2.5)
        await phone.hangup()
        recorded = time.monotonic() - t0
        await eventually(lambda a=api: not a.bridge.tracker.calls, what="call gone")
        assert _mixmonitor_starts(ami_log, f"PJSIP/{JANE}-") == 1

        (path,) = _files(pbx, call["id"])
        info = await recording_content(path, own_hz=600)  # the phone and 7778888's speech
        assert info.format_tag == WAVE_FORMAT_PCM
        assert_length(info, slept=2.5, recorded=recorded)


async def test_a_bridge_started_mid_call_records_it(pbx, phones, tmp_path, ami_log) -> None:
    phone = await phones(JANE, tone_hz=440)
    await phone.dial("7778888")
    await phone.wait_event("CALL_ESTABLISHED")
    await asyncio.sleep(0.5)
    assert not ami_log.matching("MixMonitorStart")  # no bridge yet, nothing records
    async for api in _serve(pbx, tmp_path):
        await ami_log.wait_for("MixMonitorStart")
        call = await _one_call(api, JANE, api.token_for(13))
        assert ISO.match(call["phoneCallView"][0]["recording"])
        await asyncio.sleep(2.0)  # something to record
        await phone.hangup()
        await eventually(lambda a=api: not a.bridge.tracker.calls, what="call gone")
    assert _mixmonitor_starts(ami_log, f"PJSIP/{JANE}-") == 1
    (path,) = _files(pbx, call["id"])
    info = await recording_content(path, own_hz=440)
    assert info.duration >= 1.0, info
