"""Two `pbx-bridge serve` replicas on one PostgreSQL, one sandbox Asterisk (issue 16,
item 2): any replica answers any request the same way, and a view never gets two
MixMonitors, even when both replicas are asked to start it at the same instant."""

from __future__ import annotations

import asyncio

from pbx_bridge.calls.tracker import call_id
from tests.reliability.support import START, STOP, Calls, MixMonitorWatch, pbx_truth, until
from tests.support.audio import WAVE_FORMAT_PCM, assert_length, inspect_wav
from tests.support.pbx import EventLog, recording_file
from tests.support.replicas import Replica, Replicas

A = "0003*210"
ROUNDS = 4
EACH = 3  # StartRecordings sent to each replica at once, per round


async def _tracked(replica: Replica, ext: str, cid: str) -> dict:
    """The call as the replica lists it, once it does."""
    for _ in range(200):
        found = [c for c in await replica.calls(ext) if c["id"] == cid]
        if found:
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"replica {replica.name} does not list {cid}")


async def _mixmonitors(observer: EventLog, uniqueid: str) -> int:
    truth = await pbx_truth(observer.client)  # type: ignore[attr-defined]
    return truth[uniqueid].mixmonitors


async def test_concurrent_starts_through_both_replicas_start_one_mixmonitor(
    replicas: Replicas, calls: Calls, observer: EventLog
) -> None:
    """Each round: 2 x EACH StartRecordings at once, half through each replica; all
    answer 200 with the view recording, and Asterisk runs exactly one MixMonitor on the
    channel (`mixmonitor list`, and its MixMonitorStart events never overlap). Failed on
    main: the per-view lock is per process, so both replicas started one."""
    watch = MixMonitorWatch(observer)
    c = await calls.start(A)
    cid = call_id(c.uniqueid)
    for replica in replicas.members:
        await _tracked(replica, A, cid)
    for n in range(ROUNDS):
        answers = await asyncio.gather(*(
            r.put(A, cid, START) for _ in range(EACH) for r in replicas.members
        ))
        for status, body in answers:
            assert status == 200, body
            assert "recording" in body["phoneCallView"][0], body
        await until(lambda n=n: len(watch.starts(c.channel)) > n, 10, "MixMonitorStart")
        assert await _mixmonitors(observer, c.uniqueid) == 1
        stopper = replicas.members[n % 2]
        status, body = await stopper.put(A, cid, STOP)
        assert status == 200 and "recording" not in body["phoneCallView"][0], body
        assert await _mixmonitors(observer, c.uniqueid) == 0
    await asyncio.sleep(0.5)  # a late second MixMonitor would show by now
    assert len(watch.starts(c.channel)) == ROUNDS
    assert watch.max_concurrent().get(c.uniqueid) == 1


async def test_started_through_one_replica_stopped_through_the_other(
    replicas: Replicas, calls: Calls, observer: EventLog, pbx
) -> None:
    """Both list the same call (same id, same view); A starts, B shows it recording and
    stops it; the file is whole; the catalog has one row for the run, the same through
    both replicas (both saw MixMonitorStart/Stop and wrote it)."""
    c = await calls.start(A)
    cid = call_id(c.uniqueid)
    # The same call; only link.self differs (the host the client asked).
    seen = [{**await _tracked(r, A, cid), "link": None} for r in replicas.members]
    assert seen[0] == seen[1]
    status, body = await replicas.a.put(A, cid, START)
    assert status == 200 and "recording" in body["phoneCallView"][0], body
    ev = await observer.wait_for("MixMonitorStart", Channel=c.channel)
    path = pbx.monitor_dir / recording_file(ev)
    await asyncio.sleep(2.0)
    status, body = await replicas.b.put(A, cid, STOP)
    assert status == 200 and "recording" not in body["phoneCallView"][0], body
    await observer.wait_for("MixMonitorStop", Channel=c.channel)
    assert await _mixmonitors(observer, c.uniqueid) == 0

    await until(lambda: inspect_wav(path).duration > 0, 10, f"{path} closed")
    info = inspect_wav(path)
    assert info.format_tag == WAVE_FORMAT_PCM
    assert_length(info, slept=2.0, recorded=2.0)
    assert info.rms > 100, "sound, not silence"

    rows = {}
    for r in replicas.members:
        for _ in range(200):
            listed = await r.recordings(A)
            if [row["state"] for row in listed] == ["completed"]:
                break
            await asyncio.sleep(0.05)
        assert [row["state"] for row in listed] == ["completed"], (r.name, listed)
        rows[r.name] = {**listed[0], "link": None}  # link: the host asked
    assert rows["A"] == rows["B"]
    assert abs(rows["A"]["duration"] - info.duration) < 0.01
