"""Recordings the PBX started outside the bridge, with real phones on the real Asterisk
(issue 11 item 7): a dialplan MixMonitor (asterisk-conf/extensions.conf 0003*297), one on
the Local channel of a ring group (0003*296), and one another AMI client started. Each
shows on the view it records (`recording`, `recordingId`), is catalogued with
`startedBy: "pbx"` and the file MixMonitor itself named (MIXMONITOR_FILENAME), and is
served once finished."""

from __future__ import annotations

import asyncio
import hashlib

from tests.e2e.recordings_support import finished_row, media, samples_of
from tests.e2e.test_api_recording import ISO, _one_call, _serve
from tests.support.audio import assert_both_directions
from tests.support.bridge import eventually

A, B = "0003*210", "0003*211"
A_HZ, B_HZ = 600, 800


async def _a_calls(api, phones, number: str):
    a = await phones(A, tone_hz=A_HZ)
    await phones(B, tone_hz=B_HZ, auto_answer=True)
    await a.dial(number)
    await a.wait_event("CALL_ESTABLISHED")
    return a


async def _recorded_view(api, ext: str = A) -> dict:
    """The extension's view once it shows the PBX's recording with its catalog id."""
    view: dict = {}
    for _ in range(100):
        call = await _one_call(api, ext)
        (view,) = [v for v in call["phoneCallView"] if v["extension"] == ext]
        if "recordingId" in view:
            return view
        await asyncio.sleep(0.1)
    raise AssertionError(f"{ext}'s view never showed the recording: {view}")


async def _check_row(api, pbx, view: dict, file_prefix: str) -> dict:
    row = await finished_row(api, A, started_by="pbx")
    assert (row["id"], row["state"], row["extension"]) == (view["recordingId"], "completed", A)
    assert row["phoneCallViewId"] == view["id"] and "reason" not in row, row
    (path,) = (pbx.monitor_dir).glob(f"{file_prefix}*.wav")
    data = await media(api, row)
    assert data == path.read_bytes() and row["sha256"] == hashlib.sha256(data).hexdigest()
    assert_both_directions(await samples_of(path), A_HZ, path.name, B_HZ)
    return row


async def test_a_dialplan_mixmonitor(pbx, phones, tmp_path, ami_log) -> None:
    async for api in _serve(pbx, tmp_path):
        a = await _a_calls(api, phones, "0003*297")
        start = await ami_log.wait_for("MixMonitorStart")
        assert start["Channel"].startswith(f"PJSIP/{A}-"), start  # the caller's own
        view = await _recorded_view(api)
        assert ISO.match(view["recording"])
        await asyncio.sleep(2.0)
        await a.hangup()
        await eventually(lambda a=api: not a.bridge.tracker.calls, what="call gone")
        await _check_row(api, pbx, view, f"pbx-demo/{start['Uniqueid']}")


async def test_a_mixmonitor_on_the_local_channel_of_a_ring_group(pbx, phones, tmp_path,
                                                                 ami_log) -> None:
    """A dials 0003*296; its Local channel records, then rings B: A placed the chain, so
    A's view shows the recording (B's does not: nothing records B's own channel)."""
    async for api in _serve(pbx, tmp_path):
        a = await _a_calls(api, phones, "0003*296")
        start = await ami_log.wait_for("MixMonitorStart")
        assert start["Channel"].startswith("Local/0003*211@pbx-demo-recorded-"), start
        view = await _recorded_view(api)
        call = await _one_call(api, A)
        (b_view,) = [v for v in call["phoneCallView"] if v["extension"] == B]
        assert "recording" not in b_view, b_view
        await asyncio.sleep(2.0)
        await a.hangup()
        await eventually(lambda a=api: not a.bridge.tracker.calls, what="call gone")
        await _check_row(api, pbx, view, f"pbx-demo/{start['Uniqueid']}")


async def test_a_mixmonitor_another_ami_client_started(pbx, phones, tmp_path,
                                                      ami_log) -> None:
    async for api in _serve(pbx, tmp_path):
        a = await _a_calls(api, phones, B)
        await _one_call(api, A)  # the bridge saw the call
        channel = next(c.name for c in api.bridge.tracker.channels.values()
                       if c.extension == A)
        answer = await ami_log.client.send_action(  # the test's own AMI client
            "MixMonitor", {"Channel": channel, "File": "other-client/a.wav"})
        assert answer.get("Response") == "Success", answer
        view = await _recorded_view(api)
        await asyncio.sleep(2.0)
        # A periodic resync sees no PBX_REC stamp: the PBX's recording still shows.
        await api.bridge.link.resync()
        assert (await _recorded_view(api))["recordingId"] == view["recordingId"]
        await a.hangup()
        await eventually(lambda a=api: not a.bridge.tracker.calls, what="call gone")
        await _check_row(api, pbx, view, "other-client/a")


async def test_a_star1_start_is_not_taken_for_the_pbxs(pbx, phones, tmp_path, ami_log) -> None:
    """*1 stamps PBX_REC just after its MixMonitor runs, so its MixMonitorStart looks like
    a PBX-started one (MIXMONITOR_FILENAME, no stamp): the stamp then names it."""
    async for api in _serve(pbx, tmp_path):
        a = await phones(A, tone_hz=A_HZ)
        await a.dial("7778888")
        await a.wait_event("CALL_ESTABLISHED")
        await _one_call(api, A)
        await a.send_dtmf("*1")
        await ami_log.wait_for("MixMonitorStart")
        await asyncio.sleep(2.0)
        await a.hangup()
        await eventually(lambda a=api: not a.bridge.tracker.calls, what="call gone")
        row = await finished_row(api, A)
        assert (row["startedBy"], row["state"]) == ("star1", "completed"), row
