"""The benchmark runner (bench/run.py, `make bench`) in miniature: tiny N, a few samples,
on the session's sandbox Asterisk. Checks that every part ran and produced well-formed
results, a JSON file and a PNG chart. No timing is asserted: the figures of a smoke run
on a busy CI machine mean nothing."""

from __future__ import annotations

import json
import math
from pathlib import Path

from bench.recordings import Options as RecordingsOptions
from bench.recordings import run as run_recordings
from bench.recordings import table as recordings_table
from bench.run import METHODS, Options, run, table, write
from bench.webhooks import Options as WebhooksOptions
from bench.webhooks import run as run_webhooks
from bench.webhooks import table as webhooks_table
from devtools.sandbox import Sandbox


def _stats_ok(st: dict) -> bool:
    return st["n"] > 0 and all(
        math.isfinite(st[k]) and st[k] >= 0 for k in ("p50", "p90", "p99", "mean", "max")
    )


async def test_bench_quick_run(pbx: Sandbox, tmp_path: Path) -> None:
    result = await run(Options.quick(out=None, log=lambda _msg: None), sandbox=pbx)
    assert "error" not in result, result.get("error")

    for n in ("1", "4"):
        for method in METHODS:
            assert _stats_ok(result["start"][n][method]), (n, method)
        assert _stats_ok(result["start"][n]["floor_confirmed"])
        for side in ("bridge", "ari", "ami"):
            assert _stats_ok(result["list"][n][side]), (n, side)
        assert result["list"][n]["sizes"]["bridge_calls"] == int(n)
    for method in METHODS:
        assert _stats_ok(result["concurrent"][method]["latency"])
        tp = result["throughput"][method]
        assert tp["pairs"] >= 1 and tp["pairs_per_s"] > 0
        assert set(tp["cpu_ms_per_pair"]) == {"bridge", "asterisk", "client"}
    assert result["stale_answers"] == 0  # the bridge never answered from a stale view

    live, replay = result["ingest"]["live"], result["ingest"]["replay"]
    assert live["events"] > 0 and live["events"] == live["captured"]
    for key in ("floor", "parser", "bridge"):
        assert replay[f"{key}_events_per_s"] > 0
    assert replay["channels_left"] == 0  # every replayed call hung up again
    rs = result["resync"]
    assert rs["all_consistent"] and rs["channels"] == 8 and rs["calls"] == 4
    assert result["memory"]["calls"] == 4 and result["memory"]["rss_after"]["bridge"] > 0

    text = table(result)
    assert "StartRecording" in text and "Event ingest" in text
    # Issue 15's aims, each checked (a quick run has no 50/200/500 calls: not measured).
    assert len(result["aims15"]) == 15 and "Aims of issue 15" in text
    assert all(a["ok"] is not None for a in result["aims15"] if "1 calls" in a["aim"])
    paths = write(result, tmp_path)
    assert json.loads(paths["json"].read_text())["machine"]["nproc"] >= 1
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "latest.json").exists() and (tmp_path / "latest.png").exists()


async def test_recordings_bench_quick_run() -> None:
    """bench/recordings.py in miniature: a 2 MB WAV through the bridge's media route, cat
    and sendfile, and the catalog list on a few thousand rows, SQLite and PostgreSQL."""
    opts = RecordingsOptions.quick(log=lambda _msg: None)
    result = await run_recordings(opts)
    media = result["media"]
    for method in ("bridge", "cat", "sendfile"):
        assert media[method]["bytes"] == result["media_bytes"] > 1_000_000
        assert media[method]["mb_per_s"] > 0 and _stats_ok(media[method]["first_byte"])
    for backend in ("sqlite", "postgresql"):
        rows = result["list"][backend]
        assert set(rows) == {"one", "first page", "state=failed", "phoneCallId",
                             "since/until (a day)", "page 50 (startIndex=980)"}
        assert all(_stats_ok(st) for st in rows.values())
        assert rows["first page"]["total"] == opts.rows + 1  # and the media's row
        assert rows["phoneCallId"]["total"] == 1
        assert 0 < rows["state=failed"]["total"] < opts.rows // 50
    assert "Media download" in recordings_table(result)


async def test_webhooks_bench_quick_run(pbx: Sandbox) -> None:
    """bench/webhooks.py in miniature on the session's sandbox: 40 subscriptions (two dead
    receivers among them), a few StartRecordings per phase; every live receiver of the
    bench extension got every recording.started, the hanging one held an attempt."""
    result = await run_webhooks(WebhooksOptions.quick(log=lambda _msg: None), sandbox=pbx)
    for phase in ("none", "live", "dead"):
        assert _stats_ok(result["api"][phase]), phase
    for phase in ("live", "dead"):
        assert _stats_ok(result["lag"][phase]["each"]) and _stats_ok(
            result["lag"][phase]["slowest"]), phase
    assert result["delivered"] == result["delivered_wanted"] > 0
    assert result["hung"]["accepted"] >= 1
    assert result["metrics"]["failed_total"] >= 1
    assert "Delivery lag" in webhooks_table(result)
