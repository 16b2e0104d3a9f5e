"""Replica A is SIGKILLed during a burst of 200 StartRecording/StopRecording requests
spread over both replicas (issue 16, item 2, "Faults"). Each step of a view sends the
same action through both replicas at once (the race, every time); after the step,
Asterisk itself is asked (`mixmonitor list`): every 2xx is true on the PBX, and no view
ever has two MixMonitors (its MixMonitorStart/Stop events never overlap). B keeps
answering through A's death, and the catalog (read through B) has one row per
MixMonitor run, every one finished, also the runs A was about to finish.

Webhooks: a real receiver (tests/replicas/webhooks.py, every signature verified) is
subscribed to both extensions' recording events before the burst, one subscription
through each replica. After the burst, every recording.* event the shared history holds
reaches it exactly once per event id, within a bounded wait (`[events] delivery_lease`
2 s here: what A held when it died goes to B then), and every MixMonitorStart/Stop
Asterisk reported has its recording.started/stopped.

The one second delivery the test accepts, and why: SIGKILL can land after A's request
reached the receiver and before A settled the row (A's claim is still on it, pending).
Nothing can tell "answered, settle lost" from "never answered" after the fact; the row
is sent again by B when the lease ends (at least once, the same `webhook-id`: the
receiver de-duplicates, the contract's section 7). So an id received twice passes only
if its row was pending under A's claim right after the kill AND its first copy arrived
before the kill; any other id must arrive exactly once. The report counts them."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from pbx_bridge.calls.tracker import call_id
from tests.reliability.support import (
    START,
    STOP,
    Calls,
    LiveCall,
    MixMonitorWatch,
    pbx_truth,
    report,
)
from tests.replicas.webhooks import (
    Receiver,
    cut_claims,
    recording_events,
    wait_settled,
    without_rows,
)
from tests.support.pbx import EventLog
from tests.support.replicas import Replica, Replicas, start_replicas

VIEWS = ("0003*210", "0003*211", "0003*210", "0003*211")  # 4 calls, one view each
STEPS = 25  # per view; 2 requests a step: 4 x 25 x 2 = 200 requests
KILL_AFTER = 60  # requests answered before A is killed
# A row's file read: a run stopped within a moment of its start may hold no audio yet
# (`failed`, "no audio"): finished all the same. Never `missing`, never still running.
FINISHED = {"completed", "failed"}
# Webhooks: attempts of 1 s, claims of 2 s (the least the settings allow), quick polls.
WEBHOOK_SETTINGS = {
    "PBX_BRIDGE_EVENTS__ALLOW_NETWORKS": '["127.0.0.0/8"]',
    "PBX_BRIDGE_EVENTS__TIMEOUT": "1", "PBX_BRIDGE_EVENTS__DELIVERY_LEASE": "2",
    "PBX_BRIDGE_EVENTS__POLL_INTERVAL": "0.5", "PBX_BRIDGE_EVENTS__BACKOFF_FIRST": "0.2",
    "PBX_BRIDGE_EVENTS__BACKOFF_CAP": "1",
}


@pytest.fixture
async def replicas(pbx, postgres_server, tmp_path) -> AsyncIterator[Replicas]:
    async with start_replicas(pbx, postgres_server, tmp_path, **WEBHOOK_SETTINGS) as group:
        yield group


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hooks = Receiver()
    await hooks.start()
    try:
        yield hooks
    finally:
        await hooks.close()


async def _put(replica: Replica, c: LiveCall, body: dict) -> tuple[int, dict | None]:
    try:
        return await replica.put(c.ext, call_id(c.uniqueid), body)
    except (aiohttp.ClientError, ConnectionError):
        return 0, None  # the replica is dead: no answer at all


class Burst:
    def __init__(self, replicas: Replicas, observer: EventLog) -> None:
        self.replicas = replicas
        self.ami = observer.client  # type: ignore[attr-defined]
        self.answered = 0
        self.killed = asyncio.Event()
        self.results: list[tuple[str, str, int]] = []  # (replica, action, status)
        self.wrong: list[str] = []
        self.b_refused_after_kill: list[tuple[int, dict | None]] = []
        self.killed_at = 0.0  # time.monotonic(), the receiver's clock
        self.cut: set[str] = set()  # event ids A held, unsettled, when it died

    async def view(self, c: LiveCall, rng: random.Random) -> None:
        for _ in range(STEPS):
            body = START if rng.random() < 0.55 else STOP
            asked = [(r, _put(r, c, body)) for r in self.replicas.members]
            dead = self.killed.is_set()
            answers = await asyncio.gather(*(call for _, call in asked))
            self.answered += len(answers)
            want = 1 if body is START else 0
            truth = await self._mixmonitors(c)
            for (replica, _), (status, reply) in zip(asked, answers, strict=True):
                self.results.append((replica.name, body["action"], status))
                if replica is self.replicas.b and dead and status != 200:
                    self.b_refused_after_kill.append((status, reply))
                if 200 <= status < 300:
                    shown = "recording" in (reply or {}).get("phoneCallView", [{}])[0]
                    if truth != want or shown != bool(want):
                        self.wrong.append(f"{c.channel}: {body['action']} via "
                                          f"{replica.name} answered {status} (shows "
                                          f"recording={shown}), Asterisk runs {truth}")
            if truth > 1:
                self.wrong.append(f"{c.channel}: {truth} MixMonitors")

    async def _mixmonitors(self, c: LiveCall) -> int:
        return (await pbx_truth(self.ami))[c.uniqueid].mixmonitors

    async def kill_a(self) -> None:
        while self.answered < KILL_AFTER:
            await asyncio.sleep(0.01)
        await self.replicas.a.kill()
        self.killed_at = time.monotonic()
        self.killed.set()
        # Before A's 2 s claims can run out and B take the rows over.
        self.cut = await cut_claims(self.replicas, self.replicas.a)


async def test_sigkill_one_replica_during_a_burst(
    replicas: Replicas, calls: Calls, observer: EventLog, receiver: Receiver
) -> None:
    watch = MixMonitorWatch(observer)
    # One subscription made through each replica: both must deliver for both.
    for replica, ext in zip(replicas.members, sorted(set(VIEWS)), strict=True):
        await receiver.subscribe(replica, ext)
    live = [await calls.start(ext) for ext in VIEWS]
    for c in live:
        for r in replicas.members:
            for _ in range(200):
                if any(x["id"] == call_id(c.uniqueid) for x in await r.calls(c.ext)):
                    break
                await asyncio.sleep(0.05)
    burst = Burst(replicas, observer)
    rng = random.Random(16)
    seeds = [random.Random(rng.random()) for _ in live]
    await asyncio.gather(burst.kill_a(), *(burst.view(c, s) for c, s in zip(live, seeds,
                                                                          strict=True)))
    assert len(burst.results) == 2 * STEPS * len(VIEWS) == 200
    assert burst.wrong == []
    assert burst.b_refused_after_kill == []
    for c in live:
        assert watch.max_concurrent().get(c.uniqueid, 0) <= 1, c.channel
    # Every run ends, then the catalog (through B) holds one finished row per run.
    for c in live:
        await _put(replicas.b, c, STOP)
        await calls.hangup(c)
    rows_by_call: dict[str, list[dict]] = {}
    for _ in range(300):
        rows = [row for ext in set(VIEWS) for row in await replicas.b.recordings(ext)]
        rows_by_call = {}
        for row in rows:
            rows_by_call.setdefault(row["phoneCallId"], []).append(row)
        if all(row["state"] in FINISHED for row in rows) and sum(
            len(v) for v in rows_by_call.values()
        ) >= len(watch.starts()):
            break
        await asyncio.sleep(0.1)
    for c in live:
        runs = len(watch.starts(c.channel))
        listed = rows_by_call.get(call_id(c.uniqueid), [])
        assert len(listed) == runs, (c.channel, runs, listed)
        assert {row["state"] for row in listed} <= FINISHED, listed
    hooks = await _check_webhooks(replicas, receiver, burst, watch, live, rows_by_call)
    ok = sum(1 for _, _, status in burst.results if 200 <= status < 300)
    report("replicas_sigkill", requests=len(burst.results), answered_2xx=ok,
           a_unanswered=sum(1 for name, _, s in burst.results if name == "A" and s == 0),
           mixmonitor_runs=len(watch.starts()), **hooks)


async def _check_webhooks(replicas: Replicas, receiver: Receiver, burst: Burst,
                          watch: MixMonitorWatch, live: list[LiveCall],
                          rows_by_call: dict[str, list[dict]]) -> dict[str, object]:
    """No recording webhook lost, none twice but a cut attempt's (the module's doc);
    an event for every MixMonitorStart/Stop, one per catalog row and kind."""
    states = await wait_settled(replicas, timeout=30)
    stored = await recording_events(replicas)
    lost = await without_rows(replicas)
    assert lost == [], "\n".join(map(str, lost))
    assert states == {"delivered": len(stored)}, states
    await asyncio.sleep(1.0)  # B's next polls: nothing is sent again
    per_id = receiver.per_id()
    assert receiver.bad == []
    assert set(per_id) == set(stored), (set(stored) - set(per_id), set(per_id) - set(stored))
    first = receiver.first_at()
    twice = {i: n for i, n in per_id.items() if n > 1}
    excused = {i for i, n in twice.items()
               if n == 2 and i in burst.cut and first[i] < burst.killed_at}
    assert set(twice) == excused, (twice, burst.cut)
    for got in receiver.got:
        assert got.event == stored[got.id]  # the body is the stored event, as signed
    for c in live:
        cid = call_id(c.uniqueid)
        kinds = {k: [e["data"]["id"] for e in stored.values()
                     if e["type"] == f"recording.{k}" and e["phoneCallId"] == cid]
                 for k in ("started", "stopped")}
        stops = watch.log.matching("MixMonitorStop", Channel=c.channel)
        assert len(kinds["started"]) == len(watch.starts(c.channel)), (c.channel, kinds)
        assert len(kinds["stopped"]) == len(stops), (c.channel, kinds)
        rows = sorted(row["id"] for row in rows_by_call.get(cid, []))
        assert sorted(kinds["started"]) == sorted(kinds["stopped"]) == rows, (kinds, rows)
    return {"recording_events": len(stored), "webhook_requests": len(receiver.got),
            "a_claims_cut": len(burst.cut), "delivered_twice_after_cut": len(excused)}
