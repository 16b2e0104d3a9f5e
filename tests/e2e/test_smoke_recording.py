"""Smoke proof, end to end: real phones, a real call, MixMonitor over AMI in both formats,
and the files Asterisk wrote opened and checked; then *1 pressed on a phone."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from pbx_bridge.calls.tracker import call_id
from pbx_bridge.pbx.ami import is_success
from tests.support.audio import (
    WAVE_FORMAT_GSM610,
    WAVE_FORMAT_PCM,
    assert_both_directions,
    assert_heard,
    assert_length,
    assert_tone,
    inspect_wav,
    recording_content,
    wait_file_complete,
)


async def test_mixmonitor_wav_and_wav49_on_a_real_call(pbx, phones, ami_log) -> None:
    a = await phones("0003*210", tone_hz=440)
    b = await phones("0003*211", tone_hz=1000)
    await a.dial("0003*211")
    await b.wait_event("CALL_INCOMING")
    await b.accept()
    await a.wait_event("CALL_ESTABLISHED")
    up = await ami_log.wait_for(
        "BridgeEnter", where=lambda e: e.get("Channel", "").startswith("PJSIP/0003*210")
    )
    channel = up["Channel"]

    tag = uuid.uuid4().hex[:8]
    files = {"wav": f"smoke/{tag}.wav", "wav49": f"smoke/{tag}.WAV"}
    # The negative control on real files: MixMonitor's r()/t() options write one
    # direction each, what a recording of the wrong kind would hold.
    one_way = {"rx": f"smoke/{tag}-rx.wav", "tx": f"smoke/{tag}-tx.wav"}
    client = ami_log.client
    t0 = time.monotonic()
    for fmt, rel in files.items():
        headers = {"Channel": channel, "File": rel}
        if fmt == "wav":
            headers["Options"] = f"r({one_way['rx']})t({one_way['tx']})"
        resp = await client.send_action("MixMonitor", headers)
        assert is_success(resp), resp
    await ami_log.wait_for("MixMonitorStart", Channel=channel)
    await asyncio.sleep(3.0)
    await a.hangup()
    recorded = time.monotonic() - t0
    await b.wait_event("CALL_CLOSED")

    wav_path = pbx.monitor_dir / files["wav"]
    gsm_path = pbx.monitor_dir / files["wav49"]
    await wait_file_complete(wav_path)
    await wait_file_complete(gsm_path)

    # Both directions in each file: A's 440 Hz and B's 1000 Hz.
    wav = await recording_content(wav_path, 440, 1000)
    assert wav.format_tag == WAVE_FORMAT_PCM
    assert (wav.channels, wav.sample_rate, wav.bits_per_sample) == (1, 8000, 16)
    assert_length(wav, slept=3.0, recorded=recorded)

    gsm = await recording_content(gsm_path, 440, 1000, sandbox_root=pbx.root)
    assert gsm.format_tag == WAVE_FORMAT_GSM610
    assert (gsm.channels, gsm.sample_rate) == (1, 8000)
    assert_length(gsm, slept=3.0, recorded=recorded)

    # One direction each: loud, and the both-directions check fails on them.
    for side, own, other in (("rx", 440, 1000), ("tx", 1000, 440)):
        path = pbx.monitor_dir / one_way[side]
        await wait_file_complete(path)
        info = inspect_wav(path)
        assert info.rms > 100
        assert_tone(info.samples, own, side)
        with pytest.raises(AssertionError, match="other side"):
            assert_both_directions(info.samples, own, side, other_hz=other)

    # Each phone heard the other, and not itself.
    assert_heard(inspect_wav(a.heard_file).samples, 440, "A", other_hz=1000)
    assert_heard(inspect_wav(b.heard_file).samples, 1000, "B", other_hz=440)


async def test_star1_on_the_phone_toggles_mixmonitor(pbx, phones, ami_log) -> None:
    # The policy the bridge writes from its directory; here by hand, as Asterisk sees it.
    await asyncio.to_thread(pbx.cli, "database put pbx_bridge/rec 0003*210 wav,3,0003*210")
    a = await phones("0003*210", tone_hz=440)
    await a.dial("7778888")
    await a.wait_event("CALL_ESTABLISHED")
    await ami_log.wait_for("Newstate", ChannelStateDesc="Up")
    await asyncio.sleep(0.5)

    await a.send_dtmf("*1")
    start = await ami_log.wait_for("MixMonitorStart")
    assert start["Channel"].startswith("PJSIP/0003*210-")
    await asyncio.sleep(2.0)
    await a.send_dtmf("*1")
    await ami_log.wait_for("MixMonitorStop")
    await a.hangup()

    # Named like the API names files: <org>/<ext>/<date>/<call id>-<view id>-<time>.wav
    cid = call_id(start["Linkedid"])
    files = list((pbx.monitor_dir / "3" / "0003*210").glob(f"*/{cid}-*.wav"))
    assert len(files) == 1, files
    info = await recording_content(files[0], own_hz=440)  # the phone and the speech
    assert info.format_tag == WAVE_FORMAT_PCM
    assert info.duration > 1.0
