"""Slow AMI answers: every recording action times out, the HTTP API answers 504
`pbx_timeout` each time, and nothing accumulates (memory measured with tracemalloc
before and after thousands of timed-out actions).

This is the one place of the reliability tier that uses the fake AMI server
(tests/fakeami.py), and only to inject the fault: a PBX that lists its channels but
answers Setvar / MixMonitor late or never. What works is proven against the real
Asterisk elsewhere."""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from collections.abc import AsyncIterator

import pytest

from pbx_bridge.api.routes import BACKGROUND
from pbx_bridge.calls.tracker import call_id
from pbx_bridge.pbx.ami import AmiTimeout
from tests.fakeami import FakeAmi, FakeConnection
from tests.reliability.support import Api, env_int, report, serve
from tests.support.pbx import AMI_USER

N_CALLS = 500  # each view starts at most once a second (file names): many views
ACTION_TIMEOUT = 0.05


def _channel(i: int) -> dict[str, str]:
    uid = f"1700000000.{i}"
    return {
        "Channel": f"PJSIP/0003*210-{i:08x}",
        "ChannelState": "6",
        "ChannelStateDesc": "Up",
        "CallerIDNum": "0003*210",
        "CallerIDName": "John Doe",
        "Context": "public-sim",
        "Exten": "7778888",
        "Uniqueid": uid,
        "Linkedid": uid,
        "Application": "Playback",
    }


CHANNELS = [_channel(i) for i in range(N_CALLS)]


async def _core_show_channels(conn: FakeConnection, action: dict[str, str]) -> None:
    aid = action["ActionID"]
    await conn.send({"Response": "Success", "ActionID": aid, "EventList": "start",
                     "Message": "Channels will follow"})
    for ch in CHANNELS:
        await conn.send({"Event": "CoreShowChannel", "ActionID": aid, **ch})
    await conn.send({"Event": "CoreShowChannelsComplete", "ActionID": aid,
                     "EventList": "Complete", "ListItems": str(len(CHANNELS))})


class Slow:
    """Answers every other action too late (after its timeout), the others never."""

    def __init__(self) -> None:
        self.seen = 0

    def __call__(self, conn: FakeConnection, action: dict[str, str]) -> None:
        self.seen += 1
        if self.seen % 2:
            conn.send_later(4 * ACTION_TIMEOUT,
                            {"Response": "Success", "ActionID": action["ActionID"]})


async def _no_mixmonitor(conn: FakeConnection, action: dict[str, str]) -> None:
    # Getvar PBX_RECID on a channel where no MixMonitor was ever started: empty.
    await conn.send({"Response": "Success", "ActionID": action["ActionID"],
                     "Variable": action.get("Variable", ""), "Value": ""})


@pytest.fixture
async def slow_api(tmp_path) -> AsyncIterator[tuple[Api, FakeAmi, Slow]]:
    fake = FakeAmi(username=AMI_USER, secret="fake-ami-secret", record_actions=False)
    slow = Slow()
    fake.handlers["coreshowchannels"] = _core_show_channels
    fake.handlers["setvar"] = slow
    fake.handlers["mixmonitor"] = slow
    # "Does a MixMonitor run?" (the check before retrying a timed-out start): no, as a
    # real Asterisk answers when none does; so every retry starts again and times out.
    fake.handlers["getvar"] = _no_mixmonitor
    await fake.start()
    try:
        async with serve(None, tmp_path, ami_port=fake.port, action_timeout=ACTION_TIMEOUT,
                         ping_interval=5.0, ping_timeout=5.0) as api:
            yield api, fake, slow
    finally:
        await fake.close()


async def _hammer(api: Api, n: int, parallel: int = 50) -> dict[tuple[int, str | None], int]:
    """n StartRecording requests over the N_CALLS calls, `parallel` at a time."""
    ids = [call_id(ch["Linkedid"]) for ch in CHANNELS]
    outcomes: dict[tuple[int, str | None], int] = {}
    next_i = 0

    async def worker() -> None:
        nonlocal next_i
        while next_i < n:
            i = next_i
            next_i += 1
            r = await api.start("0003*210", ids[i % N_CALLS])
            key = (r.status, r.code)
            outcomes[key] = outcomes.get(key, 0) + 1

    await asyncio.gather(*(worker() for _ in range(parallel)))
    return outcomes


class TimeoutCounter:
    """Counts the AMI actions of the bridge that ended in AmiTimeout (wraps send_action,
    which `command()` goes through too)."""

    def __init__(self, ami) -> None:
        self.count = 0
        send = ami.send_action

        async def send_action(*args, **kwargs):
            try:
                return await send(*args, **kwargs)
            except AmiTimeout:
                self.count += 1
                raise

        ami.send_action = send_action


async def _settled(api: Api) -> None:
    """Wait until no action is pending anywhere (late answers included)."""
    bridge = api.bridge
    deadline = time.monotonic() + 10
    while (bridge.ami._pending or api.app[BACKGROUND] or bridge.link._bg  # type: ignore[index]
           or bridge.recording.views.busy()):
        assert time.monotonic() < deadline, "actions still pending"
        await asyncio.sleep(0.05)
    await asyncio.sleep(8 * ACTION_TIMEOUT)  # the fake's late answers arrive and are dropped


async def _timeouts_leak_nothing(api: Api, n: int, *, min_timeouts: int = 0) -> dict:
    """n StartRecording requests (more, by 500, until at least `min_timeouts` AMI actions
    timed out), all answered 504; memory traced before and after."""
    assert api.bridge.ready
    counter = TimeoutCounter(api.bridge.ami)
    tracemalloc.start()
    try:
        warm = await _hammer(api, 500)
        assert warm == {(504, "pbx_timeout"): 500}, warm
        await _settled(api)
        gc.collect()
        before, _ = tracemalloc.get_traced_memory()
        snap0 = tracemalloc.take_snapshot()
        timeouts0 = counter.count
        t0 = time.monotonic()
        outcomes = await _hammer(api, n)
        while counter.count - timeouts0 < min_timeouts:
            for key, k in (await _hammer(api, 500)).items():
                outcomes[key] = outcomes.get(key, 0) + k
            n += 500
        elapsed = time.monotonic() - t0
        await _settled(api)
        gc.collect()
        after, peak = tracemalloc.get_traced_memory()
        snap1 = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    timed_out = counter.count - timeouts0
    assert outcomes == {(504, "pbx_timeout"): n}, outcomes
    assert timed_out >= max(min_timeouts, n), (timed_out, n)
    assert not api.bridge.ami._pending
    assert len(api.bridge.recording.views) <= 4 * (N_CALLS + 64)
    assert api.bridge.ami.connected and api.bridge.ready, "timeouts never drop the link"
    growth = after - before
    top = snap1.compare_to(snap0, "lineno")[:8]
    listing = "\n".join(str(s) for s in top)
    print(listing)
    assert growth < 512 * 1024, f"memory grew by {growth} bytes:\n{listing}"
    return {
        "http_requests": n,
        "ami_actions_timed_out": timed_out,
        "action_timeout_s": ACTION_TIMEOUT,
        "elapsed_s": round(elapsed, 1),
        "traced_before_bytes": before,
        "traced_after_bytes": after,
        "growth_bytes": growth,
        "peak_bytes": peak,
    }


async def test_slow_ami_gives_504_and_leaks_nothing(slow_api) -> None:
    api, _fake, _slow = slow_api
    report("slow_ami_short", **await _timeouts_leak_nothing(api, 3000, min_timeouts=10_000))


@pytest.mark.soak
@pytest.mark.timeout(1800)
async def test_slow_ami_soak(slow_api) -> None:
    api, _fake, _slow = slow_api
    n = env_int("PBX_BRIDGE_SOAK_TIMEOUTS", 10_000)
    report("slow_ami_soak", **await _timeouts_leak_nothing(api, n, min_timeouts=3 * n))
