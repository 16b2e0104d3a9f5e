"""The mission end to end: real SIP phones in real calls on the real Asterisk, the real
HTTP server, and the recordings Asterisk wrote opened and checked."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from devtools.sandbox import Sandbox
from pbx_bridge.api.app import create_app
from pbx_bridge.directory.store import Directory
from pbx_bridge.server import Services
from tests.support.audio import (
    WAVE_FORMAT_GSM610,
    WAVE_FORMAT_PCM,
    assert_heard,
    assert_length,
    inspect_wav,
    recording_content,
)
from tests.support.bridge import bridge_settings, demo_directory, eventually, wait_ready
from tests.support.pbx import EventLog

A = "0003*210"
MILLIWATT_HZ = 1004  # what 7778899 plays (asterisk-conf/extensions.conf [public-sim])
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")


@dataclass
class Api:
    http: aiohttp.ClientSession
    base: str
    bridge: Services
    directory: Directory
    token: str

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    def token_for(self, user_id: int) -> str:
        client_id, _ = self.directory.create_app(user_id, f"e2e-{user_id}")
        return self.directory.issue_token(client_id)[0]

    async def list(self, ext: str = A, token: str | None = None) -> list[dict]:
        async with self.http.get(f"{self.base}/uapi/phoneCalls/@me/{ext}",
                                 headers=self.auth(token)) as r:
            if r.status == 204:
                return []
            assert r.status == 200, await r.text()
            return (await r.json())["entry"]

    async def put(self, call_id: str, body: dict, ext: str = A, token: str | None = None):
        async with self.http.put(f"{self.base}/uapi/phoneCalls/@me/{ext}/{call_id}",
                                 json=body, headers=self.auth(token)) as r:
            return r.status, await r.json()


async def _serve(pbx: Sandbox, tmp_path: Path, **ami: object) -> AsyncIterator[Api]:
    directory = demo_directory(tmp_path)
    settings = bridge_settings(pbx, tmp_path, **ami)
    bridge = Services(settings, directory)
    app = create_app(settings, directory, bridge)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        await wait_ready(bridge)
        async with aiohttp.ClientSession() as http:
            api = Api(http, str(server.make_url("")).rstrip("/"), bridge, directory, "")
            api.token = api.token_for(12)  # John Doe, owner of 0003*210
            yield api
    finally:
        await server.close()


@pytest.fixture
async def api(pbx, tmp_path) -> AsyncIterator[Api]:
    async for a in _serve(pbx, tmp_path):
        yield a


async def _one_call(api: Api, ext: str = A, token: str | None = None) -> dict:
    await eventually(lambda: api.bridge.tracker.calls_of(ext), what=f"a call on {ext}")
    calls = await api.list(ext, token)
    assert len(calls) == 1, calls
    return calls[0]


def _mixmonitor_starts(log: EventLog, channel_prefix: str) -> int:
    return sum(1 for e in log.matching("MixMonitorStart")
               if e.get("Channel", "").startswith(channel_prefix))


def _recording_file(pbx: Sandbox, call: dict, view: str, suffix: str) -> Path:
    files = list((pbx.monitor_dir / "3" / A).glob(f"*/{call['id']}-{view}-*.{suffix}"))
    assert len(files) == 1, files
    return files[0]


async def test_start_and_stop_recording_a_real_call(api, phones, pbx, ami_log) -> None:
    phone = await phones(A, tone_hz=600)
    await phone.dial("7778888")
    await phone.wait_event("CALL_ESTABLISHED")
    call = await _one_call(api)

    # The PhoneCall, field by field (CONTRACT section 2).
    assert re.fullmatch(r"[0-9a-f]{20}", call["id"])
    assert call["extension"] == A and call["ownerId"] == "3"
    assert call["ownerName"] == "Default Organization"
    assert ISO.match(call["published"]) and ISO.match(call["answered"])
    assert call["link"] == {"self": f"{api.bridge.settings.http.public_base_url}"
                                     f"/uapi/phoneCalls/12/{A}/{call['id']}"}
    (view,) = call["phoneCallView"]
    assert view == {
        "id": "01", "extension": A, "status": "5", "flow": "4",
        "callerId": "John Doe <0003*210>", "source": [A], "destination": ["7778888"],
        "answered": view["answered"],
    }
    assert "recording" not in view and None not in call.values()

    t0 = time.monotonic()
    status, body = await api.put(call["id"], {"action": "StartRecording", "format": "wav",
                                             "phoneCallViewId": "01"})
    assert status == 200, body
    assert ISO.match(body["phoneCallView"][0]["recording"])
    # The answer may come before Asterisk's event: wait for it, then count it.
    await ami_log.wait_for("MixMonitorStart",
                           where=lambda e: e.get("Channel", "").startswith(f"PJSIP/{A}-"))
    assert _mixmonitor_starts(ami_log, f"PJSIP/{A}-") == 1
    # Idempotent: a second start answers the current state and starts nothing.
    status, again = await api.put(call["id"], {"action": "StartRecording",
                                              "phoneCallViewId": "01"})
    assert status == 200 and again["phoneCallView"][0]["recording"] == \
        body["phoneCallView"][0]["recording"]
    assert (await api.list())[0]["phoneCallView"][0]["recording"]
    await asyncio.sleep(2.5)
    status, stopped = await api.put(call["id"], {"action": "StopRecording",
                                                "phoneCallViewId": "01"})
    recorded = time.monotonic() - t0
    assert status == 200 and "recording" not in stopped["phoneCallView"][0], stopped
    await ami_log.wait_for("MixMonitorStop")
    status, again = await api.put(call["id"], {"action": "StopRecording",
                                              "phoneCallViewId": "01"})
    assert status == 200 and "recording" not in again["phoneCallView"][0]
    assert _mixmonitor_starts(ami_log, f"PJSIP/{A}-") == 1

    path = _recording_file(pbx, call, "01", "wav")
    # Both directions: the phone's 600 Hz and the speech 7778888 plays (contract §4).
    info = await recording_content(path, own_hz=600)
    assert info.format_tag == WAVE_FORMAT_PCM
    assert (info.channels, info.sample_rate, info.bits_per_sample) == (1, 8000, 16)
    assert_length(info, slept=2.5, recorded=recorded)
    await phone.hangup()
    await eventually(lambda: not api.bridge.tracker.calls, what="call gone")
    assert await api.list() == []
    assert_heard(inspect_wav(phone.heard_file).samples, 600, "the phone")


async def test_wav49_recording_is_gsm_in_a_WAV_file(api, phones, pbx, ami_log) -> None:
    phone = await phones(A, tone_hz=440)
    await phone.dial("7778899")  # a 1004 Hz tone
    await phone.wait_event("CALL_ESTABLISHED")
    call = await _one_call(api)
    status, body = await api.put(call["id"], {"action": "StartRecording", "format": "wav49",
                                             "phoneCallViewId": "01"})
    assert status == 200, body
    t0 = time.monotonic()
    await asyncio.sleep(2.5)
    await phone.hangup()  # hanging up ends the recording too
    recorded = time.monotonic() - t0
    await eventually(lambda: not api.bridge.tracker.calls, what="call gone")
    path = _recording_file(pbx, call, "01", "WAV")
    info = await recording_content(path, 440, MILLIWATT_HZ, sandbox_root=pbx.root)
    assert info.format_tag == WAVE_FORMAT_GSM610
    assert_length(info, slept=2.5, recorded=recorded)
    assert_heard(inspect_wav(phone.heard_file).samples, 440, "the phone", MILLIWATT_HZ)


async def test_star1_on_the_phone_shows_in_the_api(api, phones, pbx, ami_log) -> None:
    phone = await phones(A, tone_hz=440)
    await phone.dial("7778888")
    await phone.wait_event("CALL_ESTABLISHED")
    call = await _one_call(api)
    await phone.send_dtmf("*1")
    await ami_log.wait_for("MixMonitorStart")
    await eventually(lambda: api.bridge.tracker.calls_of(A)[0].channels_of(A)[0].recording,
                     what="recording seen")
    assert (await api.list())[0]["phoneCallView"][0]["recording"]
    await asyncio.sleep(2.0)  # something to record
    # The API stops what the phone started, with the same file naming.
    status, body = await api.put(call["id"], {"action": "StopRecording",
                                             "phoneCallViewId": "01"})
    assert status == 200 and "recording" not in body["phoneCallView"][0]
    await ami_log.wait_for("MixMonitorStop")
    info = await recording_content(_recording_file(pbx, call, "01", "wav"), own_hz=440)
    assert info.duration >= 1.0, info


async def test_fifty_concurrent_starts_make_one_mixmonitor(api, phones, pbx, ami_log) -> None:
    phone = await phones(A, tone_hz=440)
    await phone.dial("7778888")
    await phone.wait_event("CALL_ESTABLISHED")
    call = await _one_call(api)
    body = {"action": "StartRecording", "format": "wav", "phoneCallViewId": "01"}
    results = await asyncio.gather(*(api.put(call["id"], body) for _ in range(50)))
    assert [s for s, _ in results] == [200] * 50
    stamps = {b["phoneCallView"][0]["recording"] for _, b in results}
    assert len(stamps) == 1, stamps
    await asyncio.sleep(2.0)
    assert _mixmonitor_starts(ami_log, f"PJSIP/{A}-") == 1
    await phone.hangup()
    await eventually(lambda: not api.bridge.tracker.calls, what="call gone")
    # One file, one writer: two MixMonitors on one file would garble it.
    await recording_content(_recording_file(pbx, call, "01", "wav"), own_hz=440)


async def test_policy_and_state_errors_come_from_the_real_pbx(api, phones, pbx) -> None:
    # Jane's 0003*212 has call recording off in its phone terminal setup.
    jane = api.token_for(13)
    phone = await phones("0003*212")
    await phone.dial("7778888")
    await phone.wait_event("CALL_ESTABLISHED")
    call = await _one_call(api, "0003*212", jane)
    status, body = await api.put(call["id"], {"action": "StartRecording",
                                             "phoneCallViewId": "01"}, "0003*212", jane)
    assert (status, body["error"]["code"]) == (403, "pc_recording_disabled")
    await phone.hangup()
    await eventually(lambda: not api.bridge.tracker.calls, what="call gone")

    # A view that is still ringing cannot be recorded yet: 409.
    a, b = await phones(A), await phones("0003*211")
    await a.dial("0003*211")
    await b.wait_event("CALL_INCOMING")
    call = await _one_call(api)
    status, body = await api.put(call["id"], {"action": "StartRecording",
                                             "phoneCallViewId": "01"})
    assert (status, body["error"]["code"]) == (409, "pc_phonecallview_state"), body
    # A view id that is not a view of that call for this requester: 400.
    status, body = await api.put(call["id"], {"action": "StartRecording",
                                             "phoneCallViewId": "07"})
    assert (status, body["error"]["code"]) == (400, "pc_phonecallview_invalid")
    await a.hangup()


async def test_frozen_pbx_gives_504_then_recovers(pbx, phones, tmp_path, ami_log) -> None:
    async for api in _serve(pbx, tmp_path, action_timeout=1.0, ping_interval=30.0):
        phone = await phones(A, tone_hz=440)
        await phone.dial("7778888")
        await phone.wait_event("CALL_ESTABLISHED")
        call = await _one_call(api)
        pbx.signal(signal.SIGSTOP)
        try:
            status, body = await api.put(call["id"], {"action": "StartRecording",
                                                     "phoneCallViewId": "01"})
        finally:
            pbx.signal(signal.SIGCONT)
        assert (status, body["error"]["code"]) == (504, "pbx_timeout"), body
        await wait_ready(api.bridge)
        # The timed-out start may or may not have started MixMonitor; a retry never
        # starts a second one, and the API ends up showing what Asterisk has.
        status, body = await api.put(call["id"], {"action": "StartRecording",
                                                 "phoneCallViewId": "01"})
        assert status == 200, body
        assert ISO.match(body["phoneCallView"][0]["recording"]), body
        await asyncio.sleep(1.5)  # something to record
        await phone.hangup()
        await eventually(lambda a=api: not a.bridge.tracker.calls, what="call gone")
    # Asterisk runs a channel's actions before its hangup: every MixMonitorStart there
    # was is in the log now. Exactly one, and one file.
    await ami_log.wait_for("Hangup", where=lambda e: e.get("Channel", "").startswith(f"PJSIP/{A}-"))
    assert _mixmonitor_starts(ami_log, f"PJSIP/{A}-") == 1
    await recording_content(_recording_file(pbx, call, "01", "wav"), own_hz=440)


async def test_star1_follows_the_same_policy_as_the_api(api, phones, pbx, ami_log) -> None:
    # What the bridge wrote to AstDB from its directory: exactly the extensions whose
    # phone terminal setup records, told apart by the trigger (*1 acts on star1 only;
    # "always" is started by the dialplan on answer, issue 11).
    rows = await asyncio.to_thread(pbx.cli, "database show pbx_bridge")
    found = dict(re.findall(r"/pbx_bridge/rec/(\S+?)\s*:\s*\S+?,(star1|always)\s", rows))
    allowed = {e.number for e in api.directory.all_extensions()
               if e.recording.enabled and e.recording.trigger == "star1"}
    on_demand = {k for k, trigger in found.items() if trigger == "star1"}
    assert on_demand == allowed == {"0003*210", "0003*211", "0004*210"}, rows
    assert {k for k, trigger in found.items() if trigger == "always"} == {"0003*213"}, rows

    # Jane's 0003*212 has call recording off: *1 does nothing, as the API refuses.
    jane = await phones("0003*212")
    await jane.dial("7778888")
    await jane.wait_event("CALL_ESTABLISHED")
    await _one_call(api, "0003*212", api.token_for(13))
    await jane.send_dtmf("*1")
    await asyncio.sleep(1.5)
    assert not ami_log.matching("MixMonitorStart")
    await jane.hangup()


async def test_both_views_of_an_internal_call_record_at_once(api, phones, pbx, ami_log):
    """John's two lines in one call: view 01 (the caller, 0003*210) in wav and view 02
    (the callee, 0003*211) in wav49, two MixMonitors on two channels, two files."""
    b = await phones("0003*211", auto_answer=True, tone_hz=800)
    a = await phones(A, tone_hz=600)
    await a.dial("0003*211")
    await a.wait_event("CALL_ESTABLISHED")
    call = await _one_call(api)
    assert [v["id"] for v in call["phoneCallView"]] == ["01", "02"]
    assert [v["extension"] for v in call["phoneCallView"]] == [A, "0003*211"]
    assert [v["flow"] for v in call["phoneCallView"]] == ["2", "2"]
    results = await asyncio.gather(
        api.put(call["id"], {"action": "StartRecording", "format": "wav",
                             "phoneCallViewId": "01"}),
        api.put(call["id"], {"action": "StartRecording", "format": "wav49",
                             "phoneCallViewId": "02"}, "0003*211"),
    )
    assert [s for s, _ in results] == [200, 200], results
    t0 = time.monotonic()
    body = results[1][1]
    assert all(ISO.match(v.get("recording", "")) for v in body["phoneCallView"]), body
    await asyncio.sleep(2.5)
    await b.hangup()  # the callee hangs up: both recordings end with the call
    recorded = time.monotonic() - t0
    await eventually(lambda: not api.bridge.tracker.calls, what="call gone")
    assert _mixmonitor_starts(ami_log, f"PJSIP/{A}-") == 1
    assert _mixmonitor_starts(ami_log, "PJSIP/0003*211-") == 1

    wav = _recording_file(pbx, call, "01", "wav")
    (gsm,) = (pbx.monitor_dir / "3" / "0003*211").glob(f"*/{call['id']}-02-*.WAV")
    for path, tag, own, other in ((wav, WAVE_FORMAT_PCM, 600, 800),
                                  (gsm, WAVE_FORMAT_GSM610, 800, 600)):
        info = await recording_content(path, own, other, sandbox_root=pbx.root)
        assert info.format_tag == tag, path
        assert_length(info, slept=2.5, recorded=recorded)
    # Each phone heard the other one, and not itself.
    assert_heard(inspect_wav(a.heard_file).samples, 600, "0003*210", other_hz=800)
    assert_heard(inspect_wav(b.heard_file).samples, 800, "0003*211", other_hz=600)
