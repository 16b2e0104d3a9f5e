"""Resync against the real Asterisk: a bridge restart, an AMI link cut from outside, and
an Asterisk restart lose nothing and leave nothing behind."""

from __future__ import annotations

import asyncio

from devtools.sandbox import Sandbox
from pbx_bridge.calls.render import render_call
from pbx_bridge.recording.variables import parse_rec
from tests.support.audio import WAVE_FORMAT_PCM, inspect_wav
from tests.support.bridge import (
    bridge_settings,
    demo_directory,
    eventually,
    start_bridge,
    wait_ready,
)
from tests.support.pbx import live_channels
from tests.support.proxy import LinkCutter

A, B = "0003*210", "0003*211"


def rendered(bridge, ext: str = A) -> list[dict]:
    return [render_call(bridge.tracker, c, ext) for c in bridge.tracker.calls_of(ext)]


def asterisk_view(sandbox: Sandbox) -> set[str]:
    return set(live_channels(sandbox))


async def _getvar(bridge, channel: str, name: str) -> str:
    resp = await bridge.ami.send_action("Getvar", {"Channel": channel, "Variable": name})
    return resp.get("Value", "")


async def eventually_async(fn, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if await fn():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached")


async def _answered_call(phones):
    a, b = await phones(A), await phones(B)
    await a.dial(B)
    await b.wait_event("CALL_INCOMING")
    await b.accept()
    await a.wait_event("CALL_ESTABLISHED")
    return a, b


async def test_bridge_restart_keeps_call_ids_views_and_recording(pbx, phones, tmp_path) -> None:
    directory = demo_directory(tmp_path)
    settings = bridge_settings(pbx, tmp_path)
    first = await start_bridge(settings, directory)
    try:
        a, b = await _answered_call(phones)
        await eventually(
            lambda: any(len(c.extensions()) == 2 for c in first.tracker.calls_of(A)),
            what="both views",
        )
        call = first.tracker.calls_of(A)[0]
        for ch in list(call.channels.values()):  # PBX_VIEW has reached the channels
            await eventually_async(lambda ch=ch: _getvar(first, ch.name, "PBX_VIEW"))
        ext = directory.extension(A)
        await first.recording.service.start(call, ext, "wav")
        # the catalog names the run (recordingId) from Asterisk's MixMonitorStart, which
        # may come just after the start's answer (CONTRACT, Recording resource)
        await eventually(lambda: "recordingId" in rendered(first)[0]["phoneCallView"][0],
                         what="the recording catalogued")
        before = rendered(first)
        assert before[0]["phoneCallView"][0]["recording"]
        await asyncio.sleep(1.0)
    finally:
        await first.close()  # the bridge goes away; Asterisk keeps recording

    second = await start_bridge(settings, directory)
    try:
        after = rendered(second)
        assert after == before, f"a restarted bridge must show the same calls:\n{after}\n{before}"
        call = second.tracker.calls_of(A)[0]
        channel = second.tracker.recording_channel(call, A)
        rel = parse_rec(await _getvar(second, channel.name, "PBX_REC"))[1] or ""
        assert rel.startswith("3/0003*210/"), rel
        path = pbx.monitor_dir / rel
        await asyncio.sleep(1.0)  # recording on, with no bridge watching for a moment
        await second.recording.service.stop(call, directory.extension(A))
        assert "recording" not in rendered(second)[0]["phoneCallView"][0]
        await a.hangup()
        await b.wait_event("CALL_CLOSED")
        await eventually(lambda: not second.tracker.calls, what="call gone")
        await eventually(lambda: path.exists() and path.stat().st_size > 1000, what="file")
        info = inspect_wav(path)
        assert info.format_tag == WAVE_FORMAT_PCM
        assert info.duration > 1.5, "the recording went on across the bridge restart"
    finally:
        await second.close()


async def test_ami_link_cut_resyncs_to_what_asterisk_has(pbx, phones, tmp_path) -> None:
    cutter = await LinkCutter(pbx.ami_port).start()
    directory = demo_directory(tmp_path)
    bridge = await start_bridge(bridge_settings(pbx, tmp_path, port=cutter.port), directory)
    try:
        a = await phones(A)
        await a.dial("7778888")
        await a.wait_event("CALL_ESTABLISHED")
        await eventually(lambda: bridge.tracker.calls_of(A), what="call seen")
        # Cut the link, end that call and start another while the bridge is blind.
        cutter.blocked = True
        cutter.cut()
        await eventually(lambda: not bridge.ready, what="bridge notices the cut")
        await a.hangup()
        await a.wait_event("CALL_CLOSED")
        b = await phones(B)
        await b.dial("7778899")
        await b.wait_event("CALL_ESTABLISHED")
        cutter.blocked = False
        await wait_ready(bridge)
        await eventually(
            lambda: set(bridge.tracker.channels) == asterisk_view(pbx),
            what="tracker channels == Asterisk channels",
        )
        assert not bridge.tracker.calls_of(A), "a call that ended during the outage is gone"
        assert len(bridge.tracker.calls_of(B)) == 1, "a call started during the outage is there"
        assert cutter.connections >= 2
    finally:
        await bridge.close()
        await cutter.close()


async def test_asterisk_restart_drops_dead_calls(pbx, phones, tmp_path) -> None:
    directory = demo_directory(tmp_path)
    bridge = await start_bridge(bridge_settings(pbx, tmp_path), directory)
    try:
        a = await phones(A)
        await a.dial("7778888")
        await a.wait_event("CALL_ESTABLISHED")
        await eventually(lambda: bridge.tracker.calls_of(A), what="call seen")
        await asyncio.to_thread(pbx.stop)
        await eventually(lambda: not bridge.ready, what="not ready while Asterisk is down")
        await asyncio.to_thread(pbx.start, 60.0, fresh=False)
        await wait_ready(bridge, timeout=30)
        assert not bridge.tracker.calls, "calls from before the restart are dead"
        b = await phones(B)
        await b.dial("7778888")
        await b.wait_event("CALL_ESTABLISHED")
        await eventually(lambda: bridge.tracker.calls_of(B), what="new call tracked")
    finally:
        await bridge.close()


async def test_resync_checks_each_stamp_with_one_question(pbx, phones, tmp_path) -> None:
    """Issue 15: a resync asks Asterisk once per PBX_REC stamp (it runs one session's
    actions one after another), and still tells a running MixMonitor from one that
    stopped behind the bridge's back (the stamp stays: it must not be believed)."""
    directory = demo_directory(tmp_path)
    bridge = await start_bridge(bridge_settings(pbx, tmp_path), directory)
    try:
        await _answered_call(phones)
        await eventually(lambda: bool(bridge.tracker.calls_of(A)), what="the call")
        call = bridge.tracker.calls_of(A)[0]
        await bridge.recording.service.start(call, directory.extension(A), "wav")
        channel = bridge.tracker.recording_channel(call, A)
        assert channel is not None
        asked: list[str] = []
        send = bridge.ami.send_action

        async def counted(action, headers=None, **kw):
            asked.append(action)
            return await send(action, headers, **kw)

        bridge.ami.send_action = counted
        probe = bridge.recording.service.probe
        assert await probe.runs(channel.name) is True
        assert asked == ["Getvar"]
        bridge.ami.send_action = send
        # Stopped outside the bridge: PBX_REC stays on the channel.
        await send("StopMixMonitor", {"Channel": channel.name})
        assert parse_rec(await _getvar(bridge, channel.name, "PBX_REC"))[0] is not None
        bridge.ami.send_action = counted
        asked.clear()
        assert await probe.runs(channel.name) is False
        assert asked == ["Getvar"]
        bridge.ami.send_action = send
        await bridge.link.resync(reconnected=True)
        assert not rendered(bridge)[0]["phoneCallView"][0].get("recording")
    finally:
        await bridge.close()
