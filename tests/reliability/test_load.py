"""Load: many live calls on the real PBX and concurrent clients hammering list / get /
start / stop through the real HTTP server, while calls keep ending and starting.

No answer outside the contract (and no 5xx at all); at the end the bridge shows exactly
the channels and recordings Asterisk has; never two MixMonitors on one channel; and one
file per recording started, each a readable WAV (no recording overwrote another)."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from pbx_bridge.calls.tracker import call_id
from tests.reliability.support import (
    ADMIN,
    JOHN,
    ORG3,
    OTHER,
    OWNER,
    START,
    STOP,
    Api,
    Calls,
    LiveCall,
    MixMonitorWatch,
    env_float,
    env_int,
    pbx_truth,
    report,
    serve,
    summary,
    until,
    wait_consistent,
)
from tests.support.audio import (
    assert_both_directions,
    assert_speech,
    inspect_wav,
    wait_file_complete,
)
from tests.support.pbx import EventLog, recording_file

LOAD_PHONE_HZ = 440  # every LoadPhone's microphone (Phone.tone_hz default)
EXTS = ("0003*210", "0003*211", "0004*210", "0003*212")  # 0003*212: recording disabled
WHO = {"0003*210": (ADMIN, JOHN, ORG3), "0003*211": (ADMIN, JOHN, ORG3),
       "0004*210": (ADMIN, OTHER), "0003*212": (ADMIN, ORG3)}
# What the contract allows each operation to answer while calls come and go.
ALLOWED = {
    "list": {(200, None), (204, None)},
    "self": {(200, None), (204, None)},
    "get": {(200, None), (400, "pc_phonecall_invalid")},
    "start": {(200, None), (400, "pc_phonecall_invalid"), (400, "pc_phonecallview_invalid"),
              (403, "pc_recording_disabled"), (409, "pc_phonecallview_state")},
    "stop": {(200, None), (400, "pc_phonecall_invalid"), (400, "pc_phonecallview_invalid"),
             (409, "pc_phonecallview_state")},
}


@dataclass
class Load:
    api: Api
    calls: Calls
    log: EventLog
    outcomes: Counter = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)


@pytest.fixture
async def load(pbx, observer, tmp_path) -> AsyncIterator[Load]:
    calls = Calls(pbx, observer.client, observer)
    try:
        # The service's default AMI timeouts (config.py): a PBX busy with hundreds of
        # calls on two cores may take more than the integration tier's 1 s to answer.
        async with serve(pbx, tmp_path, http={"request_timeout": 10.0}, ping_interval=10.0,
                         ping_timeout=5.0, action_timeout=5.0) as api:
            yield Load(api, calls, observer)
    finally:
        await calls.close()


async def _client(ld: Load, rnd: random.Random, until_t: float) -> None:
    api = ld.api
    while time.monotonic() < until_t:
        live = list(ld.calls.live.values())
        if not live:
            await asyncio.sleep(0.05)
            continue
        call: LiveCall = rnd.choice(live)
        who = rnd.choice(WHO[call.ext])
        op = rnd.choices(["list", "self", "get", "start", "stop"], [3, 1, 3, 3, 2])[0]
        cid = call_id(call.uniqueid)
        if op == "list":
            r = await api.list(call.ext, user=who)
        elif op == "self":
            r = await api.request("GET", f"/uapi/phoneCalls/{OWNER[call.ext]}/@self", user=who)
        elif op == "get":
            r = await api.get(call.ext, cid, user=who)
        else:
            r = await api.put(call.ext, cid, START if op == "start" else STOP, user=who)
        key = (r.status, r.code)
        ld.outcomes[(op, *key)] += 1
        ld.latencies.setdefault(op, []).append(r.elapsed)
        if key not in ALLOWED[op]:
            ld.unexpected.append(f"{op} {call.ext} -> {r.status} {r.text[:200]}")


async def _probe(ld: Load, until_t: float, lags: list[float], pings: list[float]) -> None:
    """How late the test's event loop runs (it hosts server, bridge and clients), and how
    long the real Asterisk takes to answer an AMI Ping."""
    while time.monotonic() < until_t:
        t0 = time.monotonic()
        await asyncio.sleep(0.1)
        lags.append(time.monotonic() - t0 - 0.1)
        t1 = time.monotonic()
        await ld.log.client.send_action("Ping", timeout=30)
        pings.append(time.monotonic() - t1)


async def _churn(ld: Load, rnd: random.Random, until_t: float, every: float) -> int:
    """Calls end and begin all along."""
    n = 0
    while time.monotonic() < until_t:
        await asyncio.sleep(every)
        live = list(ld.calls.live.values())
        if live:
            gone = rnd.choice(live)
            await ld.calls.hangup(gone)
            await ld.calls.start(gone.ext)
            n += 1
    return n


def _running_times(log: EventLog, starts: list[dict]) -> dict[int, float]:
    """Seconds each MixMonitor ran, by Asterisk's event timestamps: from its
    MixMonitorStart to the next MixMonitorStop or Hangup of that channel."""
    out: dict[int, float] = {}
    for start in starts:
        began = float(start["Timestamp"])
        ends = [float(e["Timestamp"]) for e in log.events
                if e.get("Event") in ("MixMonitorStop", "Hangup")
                and e.get("Uniqueid") == start["Uniqueid"]
                and float(e.get("Timestamp", "0")) >= began]
        assert ends, f"{start['Channel']}: recording never ended"
        out[id(start)] = min(ends) - began
    return out


async def _run(ld: Load, n_calls: int, clients: int, seconds: float, churn_every: float,
               seed: int = 11) -> dict:
    watch = MixMonitorWatch(ld.log)
    per_phone = 8
    t0 = time.monotonic()
    await ld.calls.add_phones(math.ceil(1.2 * n_calls / per_phone) + 1, calls_each=per_phone)
    await ld.calls.start_many([EXTS[i % len(EXTS)] for i in range(n_calls)], parallel=10)
    setup = time.monotonic() - t0
    await wait_consistent(ld.api.bridge, ld.log.client, timeout=30)

    until_t = time.monotonic() + seconds
    churn = asyncio.create_task(_churn(ld, random.Random(seed + 1), until_t, churn_every))
    lags: list[float] = []
    pings: list[float] = []
    probe = asyncio.create_task(_probe(ld, until_t, lags, pings))
    await asyncio.gather(*(_client(ld, random.Random(seed + 2 + i), until_t)
                           for i in range(clients)))
    churned = await churn
    await probe
    print("LAG", summary(lags), "PING", summary(pings))
    assert not ld.unexpected, f"{len(ld.unexpected)} answers outside the contract: " + \
        "\n".join(ld.unexpected[:10])

    # Quiet again: the bridge shows what Asterisk has, the API too.
    await wait_consistent(ld.api.bridge, ld.log.client, timeout=30)
    truth = await pbx_truth(ld.log.client)
    recording_now = sum(1 for ch in truth.values() if ch.mixmonitors)
    for ext in EXTS:
        r = await ld.api.list(ext, user=ADMIN)
        shown = {e["id"]: "recording" in e["phoneCallView"][0] for e in r.entries}
        expected = {call_id(ch.linkedid): ch.mixmonitors > 0 for ch in truth.values()
                    if ch.name.startswith(f"PJSIP/{ext}-")}
        assert shown == expected, ext
    doubled = {uid: n for uid, n in watch.max_concurrent().items() if n > 1}
    assert not doubled, f"two MixMonitors at once: {doubled}"

    # One file per recording started, none overwritten by another.
    starts = watch.starts()
    await ld.calls.close()
    await until(lambda: not ld.api.bridge.tracker.calls, 30, "every call gone")
    files = [recording_file(e) for e in starts]
    assert all(files)
    same = [f for f, k in Counter(files).items() if k > 1]
    assert not same, f"{len(same)} files were written by two recordings, e.g. {same[:3]}"
    monitor = ld.calls.sandbox.monitor_dir
    ran = _running_times(ld.log, starts)
    # A LoadPhone (baresip 1.1) puts its current call on hold when it answers another:
    # most load calls are held, and a held phone sends nothing. Their recordings hold
    # the PBX's side only, as they should; the others hold both.
    held = {e.get("Uniqueid") for e in ld.log.matching("Hold")}
    checked = 0
    for start, rel in zip(starts, files, strict=True):
        path = monitor / rel
        seconds_ran = ran[id(start)]
        await wait_file_complete(path, timeout=10, min_size=61 if seconds_ran >= 1.0 else 44)
        info = inspect_wav(path)
        # Asterisk's own clock around the file: it cannot hold more audio than ran (plus a
        # second of slack), nor lose most of it.
        assert info.duration <= seconds_ran + 1.0, (rel, info.duration, seconds_ran)
        if seconds_ran >= 2.0:
            assert info.duration >= seconds_ran / 2, (rel, info.duration, seconds_ran)
            # 7778888's speech, and unless the phone was held, the load phone's 440 Hz
            # too. Half the blocks, not 80 %: twenty calls and ten clients on two
            # cores drop frames.
            if start["Uniqueid"] in held:
                assert_speech(info.samples, LOAD_PHONE_HZ, rel)
            else:
                assert_both_directions(info.samples, LOAD_PHONE_HZ, rel, present=0.5)
            checked += 1
    assert checked or not starts, "no recording ran long enough to check its content"

    requests = sum(ld.outcomes.values())
    return {
        "calls": n_calls,
        "clients": clients,
        "seconds": seconds,
        "setup_s": round(setup, 1),
        "calls_churned": churned,
        "call_setup_retries": ld.calls.setup_retries,
        "requests": requests,
        "requests_per_s": round(requests / seconds, 1),
        "answers": {" ".join(map(str, k)): v for k, v in sorted(ld.outcomes.items(),
                                                                 key=str)},
        "latency_s": {op: summary(v) for op, v in ld.latencies.items()},
        "event_loop_lag_s": summary(lags),
        "asterisk_ping_s": summary(pings),
        "recordings_started": len(starts),
        "recording_at_end": recording_now,
        "files": len(set(files)),
    }


async def test_load_short(load: Load) -> None:
    report("load_short", **await _run(load, n_calls=20, clients=10, seconds=10.0,
                                      churn_every=0.5))


@pytest.mark.soak
@pytest.mark.timeout(3600)
async def test_load_soak(load: Load) -> None:
    report("load_soak", **await _run(
        load,
        n_calls=env_int("PBX_BRIDGE_SOAK_LOAD_CALLS", 200),
        clients=env_int("PBX_BRIDGE_SOAK_LOAD_CLIENTS", 50),
        seconds=env_float("PBX_BRIDGE_SOAK_LOAD_SECONDS", 60.0),
        churn_every=env_float("PBX_BRIDGE_SOAK_LOAD_CHURN", 0.2),
    ))
