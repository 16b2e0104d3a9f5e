"""AMI action sessions (issue 15) against the real sandbox Asterisk: the bridge's user
holds 1 + ``action_sessions`` manager sessions, actions spread over them, and 50
StartRecordings sent at once on 50 calls start exactly one MixMonitor each (Asterisk's
own MixMonitorStart events), as 50 StopRecordings stop each once."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

from devtools.sandbox import Sandbox
from pbx_bridge.calls.tracker import Call
from pbx_bridge.directory.store import Directory
from pbx_bridge.pbx.pool import AmiPool
from tests.support.bridge import bridge_settings, eventually, start_bridge
from tests.support.pbx import EventLog

SESSIONS = 3
CALLS = 50
EXT = "0009*600"
DEVICE = "Local/600@from-internal"  # asterisk-conf: ;2 runs the echo test 600
DIRECTORY = f"""
[[organizations]]
id = 9
name = "Pool Organization"
code = "0009"

[[users]]
id = 90
name = "Pool User"
role = "user"
organization = 9

[[extensions]]
number = "{EXT}"
owner = 90
device = "{DEVICE}"
recording = {{ enabled = true, trigger = "star1", format = "wav" }}
"""


def bridge_sessions(pbx: Sandbox) -> list[list[str]]:
    rows = [line.split() for line in pbx.cli("manager show connected").splitlines()]
    return [row for row in rows if row and row[0] == "pbx-bridge"]


def on_call(bridge, n: int) -> list[Call]:
    calls = list(bridge.tracker.calls_of(EXT))
    return calls if len(calls) >= n else []


async def test_actions_spread_over_sessions_and_each_start_runs_once(
    pbx: Sandbox, ami_log: EventLog, tmp_path: Path
) -> None:
    harness = ami_log.client  # type: ignore[attr-defined]
    toml = tmp_path / "directory.toml"
    toml.write_text(DIRECTORY)
    directory = Directory.open(tmp_path / "directory.sqlite3")
    directory.load_toml(toml)
    settings = bridge_settings(pbx, tmp_path, action_sessions=SESSIONS)
    bridge = await start_bridge(settings, directory)
    try:
        pool = bridge.ami
        assert isinstance(pool, AmiPool)
        await eventually(lambda: pool.action_sessions_up == SESSIONS, 10, "action sessions")
        assert len(await asyncio.to_thread(bridge_sessions, pbx)) == 1 + SESSIONS

        await asyncio.gather(*(harness.send_action("Originate", {
            "Channel": DEVICE, "Application": "Wait", "Data": "600", "Async": "true",
            "CallerID": f"Pool <{1000 + i}>"}) for i in range(CALLS)))
        await eventually(lambda: len([
            c for c in on_call(bridge, CALLS) if bridge.tracker.recording_channel(c, EXT)
        ]) == CALLS, 30, f"{CALLS} answered calls tracked")
        calls = on_call(bridge, CALLS)
        ext = directory.extension(EXT)
        assert ext is not None
        sent = list(pool.routed)

        await asyncio.gather(*(bridge.recording.start(c, ext, "wav") for c in calls))

        channels = {bridge.tracker.recording_channel(c, EXT).name for c in calls}
        assert len(channels) == CALLS
        await eventually(lambda: {e["Channel"] for e in ami_log.matching("MixMonitorStart")}
                         >= channels, 15, "a MixMonitorStart on every call")
        await asyncio.sleep(0.5)  # a second MixMonitor would show by now
        starts = collections.Counter(e["Channel"] for e in ami_log.matching("MixMonitorStart"))
        assert {ch: starts[ch] for ch in channels} == dict.fromkeys(channels, 1)
        spread = [after - before for before, after in zip(sent, pool.routed, strict=True)]
        assert all(n > 0 for n in spread[1:]), spread
        assert spread[0] == 0, f"no start went through the event session: {spread}"

        await asyncio.gather(*(bridge.recording.stop(c, ext) for c in calls))
        await eventually(lambda: {e["Channel"] for e in ami_log.matching("MixMonitorStop")}
                         >= channels, 15, "a MixMonitorStop on every call")
        stops = collections.Counter(e["Channel"] for e in ami_log.matching("MixMonitorStop"))
        assert {ch: stops[ch] for ch in channels} == dict.fromkeys(channels, 1)
        assert all(c.recording is None for call in calls for c in call.channels_of(EXT))
    finally:
        await bridge.close()
