"""bench/aims15.py (issue 15's aims against a bench/run.py result) and bench/pinning.py
(``--taskset``): pure parts of the bench, checked on results shaped like run.py's."""

from __future__ import annotations

import os

import pytest

from bench import aims15
from bench.pinning import Pinning, cpu_list


def _st(**kw: float) -> dict[str, float]:
    return {"n": 10, **kw}


def result() -> dict:
    start = {n: {"bridge": _st(p50=b), "actions": _st(p50=a), "ari": _st(p50=ari)}
             for n, b, a, ari in (("1", 1.0, 0.6, 1.2), ("50", 1.5, 0.9, 1.4),
                                  ("200", 2.0, 1.0, 2.5), ("500", 3.0, 1.7, 3.3))}
    return {
        "start": start,
        "concurrent": {"calls": 200, "clients": 50,
                       **{m: {"latency": _st(p99=v)}
                          for m, v in (("bridge", 40.0), ("actions", 35.0), ("ari", 39.0))}},
        "ingest": {"replay": {"parser_events_per_s": 310_000.0,
                              "bridge_events_per_s": 90_000.0}},
        "resync": {"channels": 1000, "reconnect_login_to_ready": _st(p50=30.0, max=60.0),
                   "floor_coreshowchannels": _st(p50=20.0, max=30.0)},
        "list": {"1": {"bridge": _st(p50=0.40), "bridge_healthz": _st(p50=0.35),
                       "ari": _st(p50=0.30), "ari_ping": _st(p50=0.28)}},
        "memory": {"calls": 500, "bridge_bytes_per_call": 9.5 * 1024},
    }


def test_every_aim_is_checked_against_the_run() -> None:
    got = {a["aim"]: a["ok"] for a in aims15.check(result())}
    assert got == {
        "StartRecording p50 <= ARI snoop+record p50, 1 calls": True,
        "StartRecording p50 <= ARI snoop+record p50, 50 calls": False,
        "StartRecording p50 <= ARI snoop+record p50, 200 calls": True,
        "StartRecording p50 <= ARI snoop+record p50, 500 calls": True,
        "the bridge's own share <= 0.5 ms, 1 calls": True,  # 0.4
        "the bridge's own share <= 0.5 ms, 50 calls": False,  # 0.6
        "the bridge's own share <= 0.5 ms, 200 calls": False,  # 1.0
        "p99 <= 1.2x the minimal client, 200 calls, 50 clients": True,  # 40 <= 42
        "p99 <= ARI's p99, 200 calls, 50 clients": False,  # 40 > 39
        "AMI parser >= 300,000 events/s": True,
        "full path AMI client -> tracker >= 100,000 events/s": False,
        "resync p50 <= 1.5x CoreShowChannels, 1000 channels": True,  # 30 <= 30
        "resync max <= 1.5x CoreShowChannels, 1000 channels": False,  # 60 > 45
        "list at 1 call minus /healthz <= ARI /channels minus ping": False,  # 0.05 > 0.02
        "memory per live call <= 10 KiB": True,
    }


def test_an_aim_the_run_did_not_measure_is_said_so() -> None:
    r = result()
    del r["start"]["500"], r["ingest"], r["resync"]
    aims = aims15.check(r)
    missing = {a["aim"] for a in aims if a["ok"] is None}
    assert "StartRecording p50 <= ARI snoop+record p50, 500 calls" in missing
    assert "AMI parser >= 300,000 events/s" in missing
    assert "resync max <= 1.5x CoreShowChannels, ? channels" in missing
    text = aims15.table(aims)
    assert "not measured" in text and "NOT MET" in text and " met" in text
    md = aims15.table(aims, markdown=True)
    assert md.count("\n") == len(aims) + 1 and "| — " in md


def test_taskset_lists() -> None:
    first = min(os.sched_getaffinity(0))
    pin = Pinning.parse(f"{first}:{first}")
    assert pin.bridge == pin.asterisk == {first} and pin.bench is None
    assert cpu_list(f"{first}-{first}") == {first}
    for bad in ("0", "0:1:2:3", "x:0", "5-3:0", "100000:0"):
        with pytest.raises(ValueError):
            Pinning.parse(bad)


def test_memory_reads_what_a_live_call_holds_when_the_run_traced_it() -> None:
    r = result()
    r["memory"]["bridge_bytes_per_call"] = 14.2 * 1024  # RSS growth: heap glibc keeps
    (mem,) = [a for a in aims15.check(r) if a["aim"].startswith("memory")]
    assert mem["ok"] is False and "RSS" in mem["how"]
    r["memory"]["live_objects"] = {"plain": {"calls": 1000, "bytes_per_call": 7.3 * 1024}}
    (mem,) = [a for a in aims15.check(r) if a["aim"].startswith("memory")]
    assert mem["ok"] is True and mem["value"] == pytest.approx(7.3)
    assert "tracemalloc" in mem["how"]


def test_runs_side_by_side() -> None:
    pinned = result()
    pinned["setup"] = {"storage": "sqlite", "pinning": {"bridge": [0], "asterisk": [1]}}
    md = aims15.side_by_side([(aims15.label(result()), aims15.check(result())),
                              (aims15.label(pinned), aims15.check(pinned))])
    lines = md.splitlines()
    assert lines[0] == "| aim | sqlite | sqlite, pinned 0:1 |"
    assert len(lines) == 2 + len(aims15.check(result()))
    assert "**not met**" in md and ": met" in md
