"""A recording of a node-2 call, started through replica A and stopped through replica B
(issue 16, "Done when"): Asterisk on node 2 runs exactly one MixMonitor while it records
and none after, node 1 none at all; the file on node 2 is whole, with sound; the
recordings catalog of both replicas lists the run, and each replica's event stream
sends its recording.completed."""

from __future__ import annotations

import asyncio

from tests.reliability.support import START, STOP, pbx_truth, until
from tests.support.audio import WAVE_FORMAT_PCM, assert_length, inspect_wav
from tests.support.cluster import NODE1, NODE2, AdminApi, Cluster
from tests.support.pbx import EventLog, recording_file
from tests.support.sse import Message, SseReader

from .test_cluster_calls import listed, same

CALLEE = "0003*211"  # on node 2


async def mixmonitors(observer: EventLog) -> dict[str, int]:
    truth = await pbx_truth(observer.client)  # type: ignore[attr-defined]
    return {ch.name: ch.mixmonitors for ch in truth.values()}


async def test_node2_call_recorded_through_a_stopped_through_b(
    cluster: Cluster, apis: list[AdminApi], phones, observers: dict[str, EventLog]
) -> None:
    a, b = apis
    caller = await phones("0003*210", auto_answer=False)  # node 1
    await phones(CALLEE)  # node 2, answers
    await caller.dial(CALLEE)
    await caller.wait_event("CALL_ESTABLISHED")
    seen = [same(await listed(api, CALLEE)) for api in apis]
    assert seen[0] == seen[1] and len(seen[0]) == 1, seen
    cid = seen[0][0]["id"]

    status, body = await a.put(CALLEE, cid, START)
    assert status == 200 and "recording" in body["phoneCallView"][0], body
    started = await observers[NODE2].wait_for("MixMonitorStart")
    assert started["Channel"].startswith(f"PJSIP/{CALLEE}-"), started
    path = cluster.node2.monitor_dir / recording_file(started)
    assert (await mixmonitors(observers[NODE2]))[started["Channel"]] == 1
    assert not any((await mixmonitors(observers[NODE1])).values())
    # B sees the recording A started (Asterisk's PBX_REC, not A's memory)
    status, body = await b.get(CALLEE, cid)
    assert status == 200 and "recording" in body["phoneCallView"][0], body
    await asyncio.sleep(2.0)
    status, body = await b.put(CALLEE, cid, STOP)
    assert status == 200 and "recording" not in body["phoneCallView"][0], body
    await observers[NODE2].wait_for("MixMonitorStop", Channel=started["Channel"])
    assert not any((await mixmonitors(observers[NODE2])).values())
    status, body = await a.get(CALLEE, cid)
    assert status == 200 and "recording" not in body["phoneCallView"][0], body

    await until(lambda: inspect_wav(path).duration > 0, 10, f"{path} closed")
    info = inspect_wav(path)
    assert info.format_tag == WAVE_FORMAT_PCM
    assert_length(info, slept=2.0, recorded=2.0)
    assert info.rms > 100, "sound, not silence"
    await caller.hangup()

    # The catalog (shared database): one completed row for the run, the same through
    # both replicas, as long as the file; one recording.completed event on each stream.
    rows = []
    for api in apis:
        for _ in range(200):
            status, body = await api.request("GET", f"/uapi/recordings/12/{CALLEE}?count=4999")
            entries = body["entry"] if status == 200 else []
            if [row["state"] for row in entries] == ["completed"]:
                break
            await asyncio.sleep(0.05)
        assert [row["state"] for row in entries] == ["completed"], (api.replica.name, entries)
        rows.append({**entries[0], "link": None})
    assert rows[0] == rows[1]
    assert rows[0]["phoneCallId"] == cid, rows[0]
    assert abs(rows[0]["duration"] - info.duration) < 0.01
    for api in apis:
        completed = await completed_events(api)
        assert [m.event for m in completed] == ["recording.completed"], completed
        assert cid in completed[0].data, completed[0].data


async def completed_events(api: AdminApi) -> list[Message]:
    """The recording.completed events of the replica's stream (GET /uapi/events), its
    history replayed from the start (Last-Event-ID before the first event)."""
    async with api.replica.http.get(
        f"{api.replica.base}/uapi/events?types=recording.completed",
        headers={"Authorization": f"Bearer {api.token}", "Last-Event-ID": f"evt-{0:016x}"},
    ) as resp:
        assert resp.status == 200, await resp.text()
        async with asyncio.timeout(10):
            return await SseReader(resp).events(1)
