"""Issue 15's aims, checked against one bench/run.py result (same-run ratios only).

Each aim: what it asks, the value measured, the limit it is held to (both in ``unit``),
met or not (None: the run did not measure it, e.g. ``--calls`` without 500 or a failed
phase), and how it was computed. bench/run.py stores them as ``result["aims15"]`` and
prints `table`; docs/performance.md publishes them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["check", "table"]

KIB = 1024.0
OWN_SHARE_MS = 0.5  # the bridge's own share (bridge minus the minimal client), 1-200 calls
P99_VS_CLIENT = 1.2
PARSER_EVENTS_PER_S = 300_000
FULL_PATH_EVENTS_PER_S = 100_000
RESYNC_VS_CORESHOWCHANNELS = 1.5
MEMORY_PER_CALL = 10 * KIB


def _aim(aim: str, value: float | None, limit: float | None, unit: str, how: str,
         *, at_least: bool = False) -> dict[str, Any]:
    ok = None if value is None or limit is None else (
        value >= limit if at_least else value <= limit)
    return {"aim": aim, "value": value, "limit": limit, "unit": unit, "ok": ok, "how": how,
            "at_least": at_least}


def _get(r: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(r, dict) or key not in r:
            return None
        r = r[key]
    return r


def _starts(r: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for n in ("1", "50", "200", "500"):
        bridge, ari = _get(r, "start", n, "bridge", "p50"), _get(r, "start", n, "ari", "p50")
        out.append(_aim(f"StartRecording p50 <= ARI snoop+record p50, {n} calls", bridge, ari,
                        "ms", "bridge p50 vs ARI p50"))
    for n in ("1", "50", "200"):
        bridge = _get(r, "start", n, "bridge", "p50")
        actions = _get(r, "start", n, "actions", "p50")
        share = None if bridge is None or actions is None else bridge - actions
        out.append(_aim(f"the bridge's own share <= {OWN_SHARE_MS} ms, {n} calls", share,
                        OWN_SHARE_MS, "ms",
                        "bridge p50 minus the minimal client sending the same actions"))
    return out


def _concurrent(r: dict[str, Any]) -> list[dict[str, Any]]:
    c = r.get("concurrent") or {}
    where = f"{c.get('calls', '?')} calls, {c.get('clients', '?')} clients"
    bridge = _get(c, "bridge", "latency", "p99")
    actions = _get(c, "actions", "latency", "p99")
    ari = _get(c, "ari", "latency", "p99")
    return [
        _aim(f"p99 <= {P99_VS_CLIENT}x the minimal client, {where}", bridge,
             None if actions is None else P99_VS_CLIENT * actions, "ms",
             "bridge p99 vs 1.2 x the minimal client's p99 (the same actions)"),
        _aim(f"p99 <= ARI's p99, {where}", bridge, ari, "ms", "bridge p99 vs ARI p99"),
    ]


def _ingest(r: dict[str, Any]) -> list[dict[str, Any]]:
    replay = _get(r, "ingest", "replay") or {}
    return [
        _aim("AMI parser >= 300,000 events/s", replay.get("parser_events_per_s"),
             PARSER_EVENTS_PER_S, "events/s", "socket + AmiParser, replayed", at_least=True),
        _aim("full path AMI client -> tracker >= 100,000 events/s",
             replay.get("bridge_events_per_s"), FULL_PATH_EVENTS_PER_S, "events/s",
             "AmiClient -> PbxLink -> Tracker, replayed", at_least=True),
    ]


def _resync(r: dict[str, Any]) -> list[dict[str, Any]]:
    rs = r.get("resync") or {}
    where = f"{rs.get('channels', '?')} channels"
    out = []
    for q in ("p50", "max"):
        floor = _get(rs, "floor_coreshowchannels", q)
        out.append(_aim(f"resync {q} <= {RESYNC_VS_CORESHOWCHANNELS}x CoreShowChannels, "
                        f"{where}", _get(rs, "reconnect_login_to_ready", q),
                        None if floor is None else RESYNC_VS_CORESHOWCHANNELS * floor, "ms",
                        f"login -> consistent vs 1.5 x CoreShowChannels alone ({q})"))
    return out


def _list_and_memory(r: dict[str, Any]) -> list[dict[str, Any]]:
    one = _get(r, "list", "1") or {}
    parts = [_get(one, k, "p50") for k in ("bridge", "bridge_healthz", "ari", "ari_ping")]
    bridge = None if None in parts[:2] else parts[0] - parts[1]
    ari = None if None in parts[2:] else parts[2] - parts[3]
    # What a live call holds (bench.call_memory, tracemalloc) when the run traced it;
    # else the serve process's RSS growth while the calls were set up (older runs).
    traced = _get(r, "memory", "live_objects", "plain", "bytes_per_call")
    per_call = traced if traced is not None else _get(r, "memory", "bridge_bytes_per_call")
    how = (f"live objects per live call, tracemalloc "
           f"({_get(r, 'memory', 'live_objects', 'plain', 'calls')} calls)"
           if traced is not None else
           f"bridge RSS growth setting up {_get(r, 'memory', 'calls') or '?'} calls")
    return [
        _aim("list at 1 call minus /healthz <= ARI /channels minus ping", bridge, ari, "ms",
             "p50s, same run"),
        _aim("memory per live call <= 10 KiB", None if per_call is None else per_call / KIB,
             MEMORY_PER_CALL / KIB, "KiB", how),
    ]


def check(r: dict[str, Any]) -> list[dict[str, Any]]:
    """Every aim of issue 15, against this run's result."""
    return [*_starts(r), *_concurrent(r), *_ingest(r), *_resync(r), *_list_and_memory(r)]


def _fmt(x: float | None, unit: str) -> str:
    if x is None:
        return "—"
    return f"{x:,.0f}" if unit == "events/s" else f"{x:.2f}"


def table(aims: list[dict[str, Any]], *, markdown: bool = False) -> str:
    """The aims as text (the run's printout) or as a Markdown table (docs)."""
    verdict = {True: "met", False: "NOT MET", None: "not measured"}
    if markdown:
        rows = ["| aim | measured | limit | |", "|---|---:|---:|---|"]
        rows += [f"| {a['aim']} | {_fmt(a['value'], a['unit'])} {a['unit']} | "
                 f"{'≥' if a['at_least'] else '≤'} {_fmt(a['limit'], a['unit'])} | "
                 f"{verdict[a['ok']]} |" for a in aims]
        return "\n".join(rows)
    width = max((len(a["aim"]) for a in aims), default=0)
    lines = [f"  {a['aim']:<{width}}  {_fmt(a['value'], a['unit']):>9} "
             f"{'>=' if a['at_least'] else '<='} {_fmt(a['limit'], a['unit']):>9} "
             f"{a['unit']:<8} {verdict[a['ok']]}" for a in aims]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.aims15 docs/bench/latest.json``: the aims of a written run, as
    the Markdown table docs/performance.md publishes."""
    import json
    import sys
    from pathlib import Path

    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m bench.aims15 RESULT.json [MORE.json ...]", file=sys.stderr)
        return 2
    runs = [json.loads(Path(a).read_text()) for a in args]
    if len(runs) == 1:
        print(table(runs[0].get("aims15") or check(runs[0]), markdown=True))
    else:
        print(side_by_side([(label(r), check(r)) for r in runs]))
    return 0


def label(r: dict[str, Any]) -> str:
    """A run's variant: its storage, and its pinning if any."""
    setup = r.get("setup") or {}
    pin = setup.get("pinning")
    def cpus(x: Any) -> str:
        return ",".join(map(str, x)) if isinstance(x, list) else str(x)

    where = (f"pinned {cpus(pin.get('bridge'))}:{cpus(pin.get('asterisk'))}"
             if isinstance(pin, dict) else "")
    return ", ".join(x for x in (setup.get("storage", "sqlite"), where) if x)


def side_by_side(runs: list[tuple[str, list[dict[str, Any]]]]) -> str:
    """The aims of several runs (e.g. unpinned, pinned, PostgreSQL) as one Markdown
    table: per run, measured vs limit and the verdict."""
    verdict = {True: "met", False: "**not met**", None: "not measured"}
    head = "| aim | " + " | ".join(name for name, _ in runs) + " |"
    rows = [head, "|---|" + "---|" * len(runs)]
    for i, first in enumerate(runs[0][1]):
        cells = []
        for _, aims in runs:
            a = aims[i]
            sign = "≥" if a["at_least"] else "≤"
            cells.append(f"{_fmt(a['value'], a['unit'])} {sign} {_fmt(a['limit'], a['unit'])}"
                         f" {a['unit']}: {verdict[a['ok']]}")
        rows.append(f"| {first['aim']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
