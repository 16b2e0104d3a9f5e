"""The AMI link cut from outside the bridge, again and again, during live calls on the
real PBX with several recordings running: every time the bridge reconnects, resyncs, and
shows exactly the channels, calls and recordings Asterisk has (CoreShowChannels, PBX_REC
and the MixMonitors Asterisk really runs, `mixmonitor list`), and a StartRecording a client
keeps retrying through the outage starts at most one MixMonitor.

The cut is made by a relay between the bridge and Asterisk (both real): it drops the TCP
connections abruptly, optionally refuses new ones for a while (an outage), or cuts at an
exact point of the bridge's action stream (between the PBX_REC reservation and the
MixMonitor, the worst moment for a StartRecording).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from pbx_bridge.calls.tracker import call_id
from tests.reliability.support import (
    RECORDABLE,
    AmiProxy,
    Api,
    Calls,
    LiveCall,
    MixMonitorWatch,
    env_int,
    pbx_truth,
    report,
    serve,
    summary,
    until,
    wait_consistent,
)
from tests.support.audio import inspect_wav
from tests.support.pbx import EventLog, recording_file


@dataclass
class Rig:
    api: Api
    proxy: AmiProxy
    calls: Calls
    log: EventLog
    recording: set[str] = field(default_factory=set)  # uniqueids we started recording

    @property
    def bridge(self):
        return self.api.bridge

    def ready(self) -> bool:
        return self.bridge.ready and self.bridge.ami.connected

    def resynced_since(self, resyncs: int) -> bool:
        """Reconnected, resynced and ready since the resync counter read `resyncs`."""
        return self.bridge.metrics.resyncs > resyncs and self.ready()


@pytest.fixture
async def rig(pbx, ami_log, tmp_path) -> AsyncIterator[Rig]:
    proxy = await AmiProxy(pbx.ami_port).start()
    calls = Calls(pbx, ami_log.client, ami_log)
    try:
        async with serve(pbx, tmp_path, ami_port=proxy.port) as api:
            yield Rig(api, proxy, calls, ami_log)
    finally:
        await calls.close()
        await proxy.close()


async def _until_200(rig: Rig, call: LiveCall, body_kind: str, seen: list[int]) -> None:
    """A client that keeps retrying an action every 50 ms until it gets 200."""
    do = rig.api.start if body_kind == "start" else rig.api.stop
    for _ in range(400):
        r = await do(call.ext, call_id(call.uniqueid))
        seen.append(r.status)
        if r.status == 200:
            return
        assert (r.status, r.code) in {(503, "pbx_unavailable"), (504, "pbx_timeout")}, r.text
        assert r.elapsed < 4.0, f"a {r.status} took {r.elapsed:.2f} s"
        await asyncio.sleep(0.05)
    raise AssertionError(f"{body_kind} never succeeded: {seen[-5:]}")


async def _api_agrees(rig: Rig) -> None:
    """What a client reads: every live call, with `recording` exactly where Asterisk has a
    MixMonitor."""
    truth = await pbx_truth(rig.log.client)
    for ext in RECORDABLE:
        expected = {
            call_id(ch.linkedid): ch.mixmonitors > 0
            for ch in truth.values()
            if ch.name.startswith(f"PJSIP/{ext}-")
        }
        r = await rig.api.list(ext)
        shown = {e["id"]: "recording" in e["phoneCallView"][0] for e in r.entries}
        assert shown == expected, (ext, shown, expected)


KINDS = ("cut", "start_in_outage", "stop_in_outage", "start_in_flight", "stop_in_flight",
         "churn_in_outage")


async def _cut_series(rig: Rig, cuts: int, n_calls: int, seed: int = 5) -> dict:
    rnd = random.Random(seed)
    watch = MixMonitorWatch(rig.log)
    exts = [RECORDABLE[i % len(RECORDABLE)] for i in range(n_calls)]
    await rig.calls.add_phones(math.ceil((n_calls + 2) / 6), calls_each=6)
    await rig.calls.start_many(exts)
    await wait_consistent(rig.bridge, rig.log.client)
    for call in list(rig.calls.live.values())[::2]:  # half of them recording
        r = await rig.api.start(call.ext, call_id(call.uniqueid))
        assert r.status == 200, r.text
        rig.recording.add(call.uniqueid)
    await wait_consistent(rig.bridge, rig.log.client)

    reconnect: list[float] = []  # from "Asterisk reachable again" to "bridge ready"
    by_kind: dict[str, list[float]] = {}
    refused: list[float] = []  # how fast a request during the outage got its 503
    for i in range(cuts):
        kind = KINDS[i % len(KINDS)]
        live = list(rig.calls.live.values())
        idle = [c for c in live if c.uniqueid not in rig.recording]
        busy = [c for c in live if c.uniqueid in rig.recording]
        target = rnd.choice(idle if "start" in kind else busy) if (idle and busy) else None
        starts_before = len(watch.starts(target.channel)) if target else 0
        resyncs = rig.bridge.metrics.resyncs

        if kind == "cut" or target is None:
            t_reach = time.monotonic()
            rig.proxy.cut()
        elif kind.endswith("in_outage"):
            rig.proxy.blocked = True
            rig.proxy.cut()
            await until(lambda: not rig.ready(), 5, "the bridge notices the cut")
            statuses: list[int] = []
            retry = None
            if kind == "churn_in_outage":
                # While the bridge is blind: one call ends, another begins.
                gone = rnd.choice(live)
                await rig.calls.hangup(gone)
                rig.recording.discard(gone.uniqueid)
                await rig.calls.start(rnd.choice(RECORDABLE))
            else:
                retry = asyncio.create_task(
                    _until_200(rig, target, kind.split("_")[0], statuses))
            await asyncio.sleep(rnd.uniform(0.2, 0.6))
            rig.proxy.blocked = False
            t_reach = time.monotonic()
            if retry is not None:
                await retry
                assert statuses[0] == 503 and statuses[-1] == 200, statuses
        else:  # in flight: the request races the cut
            do = rig.api.start if kind.startswith("start") else rig.api.stop
            req = asyncio.create_task(do(target.ext, call_id(target.uniqueid)))
            await asyncio.sleep(rnd.uniform(0.0, 0.004))
            t_reach = time.monotonic()
            rig.proxy.cut()
            r = await req
            assert (r.status, r.code) in {(200, None), (503, "pbx_unavailable"),
                                          (504, "pbx_timeout")}, r.text
            if r.status != 200:
                await _until_200(rig, target, kind.split("_")[0], [])
        t_ready = await until(lambda n=resyncs: rig.resynced_since(n), 15,
                              "the bridge reconnected and resynced")
        reconnect.append(t_ready - t_reach)
        by_kind.setdefault(kind, []).append(t_ready - t_reach)

        if target is not None and kind != "cut":
            if kind.startswith("start"):
                rig.recording.add(target.uniqueid)
                # However often the client retried, one MixMonitor was started.
                await until(lambda t=target, n=starts_before: len(watch.starts(t.channel)) > n, 5,
                            "MixMonitorStart")
                assert len(watch.starts(target.channel)) == starts_before + 1
            elif kind.startswith("stop"):
                rig.recording.discard(target.uniqueid)
        await wait_consistent(rig.bridge, rig.log.client)
        await _api_agrees(rig)
        doubled = {uid: n for uid, n in watch.max_concurrent().items() if n > 1}
        assert not doubled, f"two MixMonitors at once on {doubled}"
        # A 503 during the outage is immediate: never a hang.
        r = await rig.api.list(RECORDABLE[0])
        assert r.status in (200, 204)
        refused.append(r.elapsed)

    assert rig.proxy.connections >= cuts + 1
    await _files_are_whole(rig, watch)
    return {
        "cuts": cuts,
        "calls": n_calls,
        "reconnect_s": summary(reconnect),
        "by_kind_median_s": {k: round(summary(v)["median"], 3) for k, v in by_kind.items()},
        "mixmonitor_starts": len(watch.starts()),
    }


async def _files_are_whole(rig: Rig, watch: MixMonitorWatch) -> None:
    """Hang everything up: one file per MixMonitor started, each a readable WAV."""
    starts = watch.starts()
    await rig.calls.close()
    await until(lambda: not rig.bridge.tracker.calls, 15, "every call gone")
    files = [recording_file(e) for e in starts]
    assert all(files), "every MixMonitor of the API carries its file name"
    assert len(set(files)) == len(files), "two recordings share (overwrite) one file"
    monitor = rig.calls.sandbox.monitor_dir
    for rel in files:
        path = monitor / rel
        await until(path.exists, 10, f"{rel} written")
        with contextlib.suppress(AssertionError):
            info = inspect_wav(path)
            assert info.duration > 0
            continue
        await asyncio.sleep(1.0)  # the header is written when MixMonitor closes the file
        assert inspect_wav(path).duration > 0


async def test_link_cuts_during_live_calls(rig: Rig) -> None:
    figures = await _cut_series(rig, cuts=6, n_calls=4)
    report("link_cuts_short", **figures)


@pytest.mark.soak
@pytest.mark.timeout(1800)
async def test_link_cuts_soak(rig: Rig) -> None:
    figures = await _cut_series(
        rig,
        cuts=env_int("PBX_BRIDGE_SOAK_CUTS", 50),
        n_calls=env_int("PBX_BRIDGE_SOAK_CALLS", 20),
    )
    report("link_cuts_soak", **figures)


async def test_cut_between_reservation_and_mixmonitor(rig: Rig) -> None:
    """The worst-timed cut: Asterisk got the PBX_REC reservation but never the MixMonitor.
    Afterwards the bridge must not claim a recording Asterisk does not run (a StartRecording
    retry answered "already recording" would lose the whole recording), and the retry
    starts exactly one MixMonitor."""
    watch = MixMonitorWatch(rig.log)
    await rig.calls.add_phones(1)
    call = await rig.calls.start(RECORDABLE[0])
    await wait_consistent(rig.bridge, rig.log.client)
    cid = call_id(call.uniqueid)

    resyncs = rig.bridge.metrics.resyncs
    rig.proxy.cut_before = b"Action: MixMonitor\r\n"
    r = await rig.api.start(call.ext, cid)
    assert rig.proxy.cut_done.is_set()
    assert (r.status, r.code) == (503, "pbx_unavailable"), r.text
    await until(lambda: rig.resynced_since(resyncs), 15, "resynced")
    await wait_consistent(rig.bridge, rig.log.client)
    r = await rig.api.get(call.ext, cid)
    assert "recording" not in r.body["phoneCallView"][0], "a recording Asterisk does not run"

    r = await rig.api.start(call.ext, cid)
    assert r.status == 200 and "recording" in r.body["phoneCallView"][0], r.text
    await until(lambda: len(watch.starts(call.channel)) == 1, 5, "one MixMonitorStart")
    await wait_consistent(rig.bridge, rig.log.client)


async def test_cut_between_stopmixmonitor_and_release(rig: Rig) -> None:
    """The worst-timed cut of a StopRecording: MixMonitor stopped, PBX_REC still set.
    The bridge must show no recording, and a new StartRecording must really record."""
    watch = MixMonitorWatch(rig.log)
    await rig.calls.add_phones(1)
    call = await rig.calls.start(RECORDABLE[0])
    await wait_consistent(rig.bridge, rig.log.client)
    cid = call_id(call.uniqueid)
    assert (await rig.api.start(call.ext, cid)).status == 200
    await until(lambda: len(watch.starts(call.channel)) == 1, 5, "MixMonitorStart")
    await asyncio.sleep(1.1)  # the next recording gets a file name of its own

    resyncs = rig.bridge.metrics.resyncs
    rig.proxy.cut_before = b"Variable: PBX_REC\r\n"
    r = await rig.api.stop(call.ext, cid)
    assert rig.proxy.cut_done.is_set()
    assert (r.status, r.code) == (503, "pbx_unavailable"), r.text
    await rig.log.wait_for("MixMonitorStop", Channel=call.channel)
    await until(lambda: rig.resynced_since(resyncs), 15, "resynced")
    await wait_consistent(rig.bridge, rig.log.client)

    r = await rig.api.start(call.ext, cid)
    assert r.status == 200 and "recording" in r.body["phoneCallView"][0], r.text
    await until(lambda: len(watch.starts(call.channel)) == 2, 5, "a second MixMonitorStart")
    await wait_consistent(rig.bridge, rig.log.client)
