"""Recording "always": Jane's 0003*213 records every call without anyone asking, from
the moment its view is answered, in the extension's format and the API's file naming;
no app may stop it; a bridge started in the middle of the call records it too."""

from __future__ import annotations

import asyncio
import hashlib
import time

from tests.e2e.test_api_recording import ISO, _mixmonitor_starts, _one_call, _serve
from tests.support.audio import WAVE_FORMAT_PCM, assert_length, recording_content
from tests.support.bridge import eventually
from tests.support.pbx import wait_no_channels

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


def _any_view_files(pbx, call_id: str) -> list:
    return list((pbx.monitor_dir / "3" / JANE).glob(f"*/{call_id}-*.wav"))


async def test_the_dialplan_records_a_call_to_always_while_the_bridge_is_down(
        pbx, phones, tmp_path, ami_log) -> None:
    """Issue 11 item 5: the bridge wrote the policy to AstDB, then stopped; a call to
    Jane is recorded by the dialplan (Dial U(pbx-bridge-rec)) alone, and the bridge
    started after the hang-up adds no MixMonitor (one, both parties) but catalogues the
    file it finds: listed once, completed, started by "always", as long as the file."""
    async for _api in _serve(pbx, tmp_path):
        pass  # the bridge connects, writes the AstDB policy, and is stopped again
    policy = await asyncio.to_thread(pbx.cli, f"database get pbx_bridge rec/{JANE}")
    assert "wav,3,0003*213,always" in policy, policy
    jane = await phones(JANE, auto_answer=True, tone_hz=800)
    john = await phones("0003*210", tone_hz=600)
    await john.dial(JANE)
    await john.wait_event("CALL_ESTABLISHED")
    await ami_log.wait_for("MixMonitorStart")
    await asyncio.sleep(2.5)
    await jane.hangup()
    await wait_no_channels(pbx, timeout=15)  # the call is over before the bridge starts
    linkedid = ami_log.matching("MixMonitorStart")[0]["Linkedid"]
    call_id = hashlib.sha1(linkedid.encode()).hexdigest()[:20]
    async for api in _serve(pbx, tmp_path):
        (row,) = await _catalogued(api, call_id)
        await asyncio.sleep(3.0)  # past the grace: a repair would have started by now
        assert not api.bridge.tracker.calls
        await api.bridge.recordings.reconciler.run()  # once more: nothing listed twice
        assert await _catalogued(api, call_id) == [row]
        media = await _media(api, row["id"])
    assert _mixmonitor_starts(ami_log, f"PJSIP/{JANE}-") == 1
    assert _mixmonitor_starts(ami_log, "PJSIP/0003*210-") == 0  # John: on demand only
    (path,) = _any_view_files(pbx, call_id)
    assert path.name.startswith(f"{call_id}-00-"), path  # no bridge: no view id yet
    info = await recording_content(path, own_hz=800, other_hz=600)
    assert info.format_tag == WAVE_FORMAT_PCM and info.duration >= 1.5, info
    assert (row["state"], row["startedBy"], row["phoneCallViewId"], row["ownerId"]) == (
        "completed", "always", "00", "3"), row
    assert "appId" not in row and row["format"] == "wav"
    assert abs(row["duration"] - info.duration) < 0.01, (row, info)
    assert media == path.read_bytes()  # what it serves is the file, both tones and all
    assert (row["size"], row["sha256"]) == (len(media), hashlib.sha256(media).hexdigest())


async def _catalogued(api, call_id: str, timeout: float = 20.0) -> list[dict]:
    """Jane's recordings of the call, once the catalog lists any."""
    url = f"{api.base}/uapi/recordings/@me/{JANE}?phoneCallId={call_id}"
    for _ in range(int(timeout / 0.1)):
        async with api.http.get(url, headers=api.auth(api.token_for(13))) as r:
            if r.status == 200:
                return (await r.json())["entry"]
            assert r.status == 204, await r.text()
        await asyncio.sleep(0.1)
    raise AssertionError(f"no recording of call {call_id} listed within {timeout} s")


async def _media(api, recording_id: str) -> bytes:
    url = f"{api.base}/uapi/recordings/@me/{JANE}/{recording_id}/media"
    async with api.http.get(url, headers=api.auth(api.token_for(13))) as r:
        assert r.status == 200, await r.text()
        return await r.read()


async def test_with_the_bridge_running_the_dialplans_recording_is_the_only_one(
        pbx, phones, tmp_path, ami_log) -> None:
    async for api in _serve(pbx, tmp_path):
        jane = await phones(JANE, auto_answer=True, tone_hz=800)
        john = await phones("0003*210", tone_hz=600)
        await john.dial(JANE)
        await john.wait_event("CALL_ESTABLISHED")
        await ami_log.wait_for("MixMonitorStart")
        call = await _one_call(api, JANE, api.token_for(13))
        (view,) = [v for v in call["phoneCallView"] if v["extension"] == JANE]
        assert ISO.match(view.get("recording", "")), view
        await asyncio.sleep(3.0)  # past the bridge's grace: it would have doubled by now
        await jane.hangup()
        await eventually(lambda a=api: not a.bridge.tracker.calls, what="call gone")
        assert api.bridge.metrics.recordings_started == 0  # the dialplan's, not ours
    assert _mixmonitor_starts(ami_log, f"PJSIP/{JANE}-") == 1
    (path,) = _any_view_files(pbx, call["id"])
    await recording_content(path, own_hz=800, other_hz=600)


async def test_an_always_extension_reached_through_a_local_channel(pbx, phones,
                                                                  ami_log) -> None:
    """0003*299 rings 0003*211 through a Local channel, as ring groups and queues do:
    the inner Dial of the extension's own device records it, never the Local half.
    (The bridge never runs here; the policy is put where it would write it.)"""
    await asyncio.to_thread(pbx.cli, "database put pbx_bridge rec/0003*211 "
                                     "wav,3,0003*211,always")
    await phones("0003*211", auto_answer=True, tone_hz=800)
    a = await phones("0003*210", tone_hz=600)
    await a.dial("0003*299")
    await a.wait_event("CALL_ESTABLISHED")
    start = await ami_log.wait_for("MixMonitorStart")
    await asyncio.sleep(2.5)
    await a.hangup()
    await wait_no_channels(pbx, timeout=15)
    assert start["Channel"].startswith("PJSIP/0003*211-"), start
    assert len(ami_log.matching("MixMonitorStart")) == 1
    call_id = hashlib.sha1(start["Linkedid"].encode()).hexdigest()[:20]
    (path,) = (pbx.monitor_dir / "3" / "0003*211").glob(f"*/{call_id}-00-*.wav")
    await recording_content(path, own_hz=800, other_hz=600)


async def test_star1_cannot_stop_an_always_recording(pbx, phones, tmp_path, ami_log) -> None:
    """The AstDB policy now exists for "always" extensions too (trigger always): *1
    reads it and refuses, as the API's StopRecording does; the recording goes on."""
    async for api in _serve(pbx, tmp_path):
        phone = await phones(JANE, tone_hz=600)
        await phone.dial("7778888")
        await phone.wait_event("CALL_ESTABLISHED")
        await ami_log.wait_for("MixMonitorStart")
        await phone.send_dtmf("*1")
        denied = await ami_log.wait_for("UserEvent", UserEvent="PbxBridgeRec")
        assert denied.get("Result") == "denied", denied
        await asyncio.sleep(0.5)
        assert not ami_log.matching("MixMonitorStop")
        call = await _one_call(api, JANE, api.token_for(13))
        assert ISO.match(call["phoneCallView"][0]["recording"])
        await phone.hangup()
        await eventually(lambda a=api: not a.bridge.tracker.calls, what="call gone")


async def test_a_bridge_started_during_a_dialplan_recording_adds_none(
        pbx, phones, tmp_path, ami_log) -> None:
    """The resync of a bridge started mid-call recognises the dialplan's PBX_REC stamp:
    the view shows recording and, past the grace, still one MixMonitor."""
    async for _api in _serve(pbx, tmp_path):
        pass  # writes the AstDB policy, then stops
    await phones(JANE, auto_answer=True, tone_hz=800)
    john = await phones("0003*210", tone_hz=600)
    await john.dial(JANE)
    await john.wait_event("CALL_ESTABLISHED")
    await ami_log.wait_for("MixMonitorStart")
    async for api in _serve(pbx, tmp_path):
        call = await _one_call(api, JANE, api.token_for(13))
        (view,) = [v for v in call["phoneCallView"] if v["extension"] == JANE]
        assert ISO.match(view.get("recording", "")), view
        await asyncio.sleep(3.0)  # past the grace
        await john.hangup()
        await eventually(lambda a=api: not a.bridge.tracker.calls, what="call gone")
        assert api.bridge.metrics.recordings_started == 0
    assert _mixmonitor_starts(ami_log, f"PJSIP/{JANE}-") == 1
    (path,) = _any_view_files(pbx, call["id"])
    await recording_content(path, own_hz=800, other_hz=600)
