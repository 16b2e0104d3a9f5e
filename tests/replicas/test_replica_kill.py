"""Replica A is SIGKILLed during a burst of 200 StartRecording/StopRecording requests
spread over both replicas (issue 16, item 2, "Faults"). Each step of a view sends the
same action through both replicas at once (the race, every time); after the step,
Asterisk itself is asked (`mixmonitor list`): every 2xx is true on the PBX, and no view
ever has two MixMonitors (its MixMonitorStart/Stop events never overlap). B keeps
answering through A's death, and the catalog (read through B) has one row per
MixMonitor run, every one finished, also the runs A was about to finish.

Webhooks: `replicas.after` takes a check of the shared database's events and outbox (no
webhook lost or delivered twice), run while B still runs (tests/support/replicas.py)."""

from __future__ import annotations

import asyncio
import random

import aiohttp

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
from tests.support.pbx import EventLog
from tests.support.replicas import Replica, Replicas

VIEWS = ("0003*210", "0003*211", "0003*210", "0003*211")  # 4 calls, one view each
STEPS = 25  # per view; 2 requests a step: 4 x 25 x 2 = 200 requests
KILL_AFTER = 60  # requests answered before A is killed
# A row's file read: a run stopped within a moment of its start may hold no audio yet
# (`failed`, "no audio"): finished all the same. Never `missing`, never still running.
FINISHED = {"completed", "failed"}


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
        self.killed.set()


async def test_sigkill_one_replica_during_a_burst(
    replicas: Replicas, calls: Calls, observer: EventLog
) -> None:
    watch = MixMonitorWatch(observer)
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
    ok = sum(1 for _, _, status in burst.results if 200 <= status < 300)
    report("replicas_sigkill", requests=len(burst.results), answered_2xx=ok,
           a_unanswered=sum(1 for name, _, s in burst.results if name == "A" and s == 0),
           mixmonitor_runs=len(watch.starts()))
