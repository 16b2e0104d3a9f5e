"""Ingest per node (issue 16): how many AMI events/s ONE bridge process takes in when K
PBX nodes (``[[pbx]]``) each blast their event stream at it at the same time, through
the full path (AmiClient -> PbxLink -> that node's tracker -> every feature of
`Services`, the shared recordings catalog and events history included), as
bench/ingest_path.py's ``full_path`` does for one node (bench/bridge_replay.py).

    .venv/bin/python -m bench.ingest_nodes [--nodes 1,2,4] [--events N] [--rounds R]
                                           [--json OUT]

``--events``: per node (whole transcript repetitions, at least one). Each K runs on a
fresh copy of the directory database, best of ``--rounds``; ratios are same-run only
(the machine is shared).

What each node's stream is, so that every node does the work it does in production:

- **its own ids**: every Uniqueid/Linkedid carries the node's systemname
  (``pbx2-1795862364.7``), as an Asterisk with asterisk.conf ``systemname`` sends them,
  and the stand-in server's CoreSettings answer carries ``SystemName: pbx2``; the bridge
  reads it (core/nodes.py, NodeIdentity) and a node is ready only with a name of its
  own. So call ids differ across nodes and the shared catalog and history (keyed by
  Asterisk ids) store each node's rows and events, none dropped as another's.
- **its own extensions**: the transcripts' phones are the demo directory's
  (config/directory.example.toml, organizations 0003/0004). The directory loaded is that
  one copied once per node: node k (k = 1..K) gets organizations ``<k-1>003`` and
  ``<k-1>004`` (ids + 1000(k-1)), their users and extensions (``1003*210``, device
  ``PJSIP/1003*210``), each with ``node = "pbx<k>"``; node 1's copy is the demo itself.
  Node k's stream is the transcripts with those numbers rewritten the same way
  (channels, caller ids, extens, the recording file names of PBX_REC), so each node's
  tracker maps its channels to extensions of its own, as with real phones registered on
  each node; and every tracker, catalog node and view sees exactly what node 1 sees.
  Rewriting the numbers rather than sharing one set of extensions between the nodes
  is what a real cluster looks like (an extension lives on one node), and it keeps
  node 1's stream byte for byte the one bench/ingest_path.py replays (plus the prefix).

Not the same as production: one stand-in server process per node runs on the same
(shared, 2-core) machine as the bridge; its send time is printed (a blast written much
faster than the bridge reads it means the bridge was the bottleneck). The database is
SQLite, as in bench/ingest_path.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import shutil
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.bridge_replay import DIRECTORY, blocks, drive
from bench.replay import ReplayServer, rewrite
from pbx_bridge.config import Settings
from pbx_bridge.directory.models import DirectoryFile
from pbx_bridge.directory.store import Directory
from pbx_bridge.events.store import EventStore

__all__ = ["events_per_call", "measure", "node_blocks", "node_directory", "node_name"]

ID_SHIFT = 1000  # node k's organizations and users: the demo's ids + 1000 (k - 1)
MAX_NODES = 10  # node k's organization codes start with the digit k - 1


def node_name(k: int) -> str:
    """Node k's name in ``[[pbx]]`` and its Asterisk's systemname (k from 1)."""
    return f"pbx{k}"


def _code(code: str, k: int) -> str:
    return f"{k - 1}{code[1:]}"


def _renumber(text: str, data: DirectoryFile, k: int) -> str:
    for org in data.organizations:
        text = text.replace(f"{org.code}*", f"{_code(org.code, k)}*")
    return text


def node_directory(data: DirectoryFile, count: int) -> DirectoryFile:
    """``data`` once per node: node k's own organizations, users and extensions."""
    if count > MAX_NODES or any(not o.code.startswith("0") for o in data.organizations):
        raise ValueError(f"at most {MAX_NODES} nodes, and organization codes 0xxx")
    orgs, users, exts = [], [], []
    for k in range(1, count + 1):
        shift = ID_SHIFT * (k - 1)
        orgs += [o.model_copy(update={"id": o.id + shift, "code": _code(o.code, k)})
                 for o in data.organizations]
        users += [u.model_copy(update={
            "id": u.id + shift,
            "organization": None if u.organization is None else u.organization + shift,
        }) for u in data.users]
        exts += [e.model_copy(update={
            "number": _renumber(e.number, data, k), "device": _renumber(e.device, data, k),
            "owner": e.owner + shift, "node": node_name(k),
        }) for e in data.extensions]
    return DirectoryFile(organizations=orgs, users=users, extensions=exts)


def node_blocks(base: list[bytes], data: DirectoryFile, k: int) -> list[bytes]:
    """The transcripts as node k's phones make them: its extension numbers everywhere,
    and its organization folder in recording file names (``1003/1003*210/...``)."""
    pairs: list[tuple[bytes, bytes]] = []
    for org in data.organizations:
        code, new = org.code.encode(), _code(org.code, k).encode()
        old_id, new_id = str(org.id).encode(), str(org.id + ID_SHIFT * (k - 1)).encode()
        for sep in (b"/", b"|"):  # MIXMONITOR_FILENAME's folder, PBX_REC's value
            pairs.append((sep + old_id + b"/" + code + b"*", sep + new_id + b"/" + new + b"*"))
        pairs.append((code + b"*", new + b"*"))
    out = []
    for block in base:
        for old, new in pairs:
            block = block.replace(old, new)
        out.append(block)
    return out


def events_per_call(base: list[bytes]) -> tuple[int, int, int]:
    """(events, events carrying a Linkedid, distinct Linkedids) of the transcripts."""
    linked: dict[bytes, int] = {}
    for block in base:
        for line in block.split(b"\r\n"):
            if line.startswith(b"Linkedid: "):
                linked[line[10:]] = linked.get(line[10:], 0) + 1
    return len(base), sum(linked.values()), len(linked)


def _settings(servers: dict[str, ReplayServer], db: Path) -> Settings:
    return Settings(
        pbx=[{"name": name, "port": s.port, "secret": "x", "action_timeout": 10.0}
             for name, s in servers.items()],
        database={"url": f"sqlite:///{db}"},
    )


def call_ids_by_node(db: Path, node_of: dict[str, str]) -> dict[str, set[str]]:
    """node -> the PhoneCall ids of the events history, by the node of the event's
    extension."""
    out: dict[str, set[str]] = {}
    with Directory.open(db) as directory:
        store, seq = EventStore(directory.database), 0
        while batch := store.after_events(seq, 10_000):
            for ev in batch:
                if ev.phone_call_id and ev.extension in node_of:
                    out.setdefault(node_of[ev.extension], set()).add(ev.phone_call_id)
            seq = batch[-1].seq
    return out


async def one_count(servers: dict[str, ReplayServer], template: Path, tmp: Path,
                    rounds: int, node_of: dict[str, str]) -> dict[str, Any]:
    """K nodes (``servers``), best of ``rounds``, each on a fresh copy of the database."""
    best: dict[str, Any] = {}
    for r in range(rounds):
        db = tmp / f"k{len(servers)}-r{r}.sqlite3"
        shutil.copyfile(template, db)
        run = await drive(_settings(servers, db), db, servers)
        if not best or run.seconds < best["seconds"]:
            best = {"seconds": run.seconds, "cpu_seconds": run.cpu_seconds,
                    "done": run.done, "sent": run.sent}
        ids = call_ids_by_node(db, node_of)
        best["tracker_events"] = run.events  # every round must deliver all (checked)
        if any(run.events[name] != s.events for name, s in servers.items()):
            raise RuntimeError(f"a tracker missed events: {run.events}")
        db.unlink()
    names = list(servers)
    best["sent_events"] = {name: s.events for name, s in servers.items()}
    best["call_ids"] = {name: len(ids.get(name, ())) for name in names}
    best["shared_call_ids"] = sum(len(ids.get(a, set()) & ids.get(b, set()))
                                  for i, a in enumerate(names) for b in names[i + 1:])
    return best


async def measure(counts: Sequence[int], events: int, rounds: int) -> dict[str, Any]:
    """Per K in ``counts``: K nodes of ``events`` events each (whole repetitions of
    the transcripts) into one bridge, best of ``rounds``."""
    base = blocks()
    data = DirectoryFile.model_validate(tomllib.loads(DIRECTORY.read_text()))
    top = max(counts)
    directory = node_directory(data, top)
    node_of = {e.number: e.node or node_name(1) for e in directory.extensions}
    reps = max(1, math.ceil(events / len(base)))
    servers: dict[str, ReplayServer] = {}
    try:
        for k in range(1, top + 1):
            name = node_name(k)
            stream = rewrite(node_blocks(base, data, k), reps, name)
            servers[name] = await asyncio.to_thread(ReplayServer, stream, name)
        with tempfile.TemporaryDirectory(prefix="ingest-nodes-") as tmp:
            template = Path(tmp) / "directory.sqlite3"
            with Directory.open(template) as d:
                d.load(directory)
            by_count = {}
            for count in counts:
                some = {name: servers[name] for name in list(servers)[:count]}
                by_count[str(count)] = await one_count(some, template, Path(tmp), rounds,
                                                       node_of)
    finally:
        for server in servers.values():
            await asyncio.to_thread(server.stop)
    first = servers[node_name(1)]
    total, linked, calls = events_per_call(base)
    return {"events_per_node": first.events, "bytes_per_event": first.bytes / first.events,
            "rounds": rounds, "transcripts": {"events": total, "linked_events": linked,
                                              "calls": calls},
            "by_nodes": _rates(by_count, total / calls)}


def _rates(by_count: dict[str, dict[str, Any]], per_call: float) -> dict[str, dict[str, Any]]:
    """Adds the rates: into the process, per node, against the first K (K = 1)."""
    base: float | None = None
    for count, res in by_count.items():
        total = sum(res["sent_events"].values()) / res["seconds"]
        base = base or total
        res.update(nodes=int(count), events_per_s=total, per_node_events_per_s=total
                   / int(count), ratio_to_first=total / base,
                   calls_per_s_per_node=total / int(count) / per_call,
                   send_seconds=max(res["sent"].values()),
                   cpu_per_wall=res["cpu_seconds"] / res["seconds"])
    return by_count


def show(res: dict[str, Any]) -> None:
    t = res["transcripts"]
    per_call = t["events"] / t["calls"]
    first = next(iter(res["by_nodes"]))
    print(f"{res['events_per_node']:,} events per node ({res['bytes_per_event']:.0f} bytes "
          f"each), best of {res['rounds']}, one bridge process, full path")
    print(f"{'nodes':>5} {'events/s in':>12} {'per node':>10} {f'vs K={first}':>8} "
          f"{'send s':>7} {'bridge s':>8} {'CPU/wall':>8} {'calls/s/node':>12} {'ids shared':>10}")
    for row in res["by_nodes"].values():
        print(f"{row['nodes']:>5} {row['events_per_s']:>12,.0f} "
              f"{row['per_node_events_per_s']:>10,.0f} {row['ratio_to_first']:>7.2f}x "
              f"{row['send_seconds']:>7.2f} {row['seconds']:>8.2f} {row['cpu_per_wall']:>8.2f} "
              f"{row['calls_per_s_per_node']:>12,.1f} {row['shared_call_ids']:>10}")
    print(f"transcripts: {t['events']:,} events, {t['calls']} calls (distinct Linkedids; "
          f"{t['linked_events']:,} events carry one): {per_call:.1f} events per call, so "
          "calls/s/node = per node / that.")
    print("send s: the slowest stand-in server's time to write its blast; bridge s: until "
          "every tracker had all; CPU/wall: the bridge process's CPU (all threads) per "
          "second; ids shared: call ids seen in the events history of two nodes (0).")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", default="1,2,4", help="node counts, comma separated")
    ap.add_argument("--events", type=int, default=50_000, help="events per node")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="write the results to this file")
    args = ap.parse_args()
    counts = [int(c) for c in args.nodes.split(",")]
    if not counts or min(counts) < 1 or max(counts) > MAX_NODES:
        ap.error(f"--nodes: counts from 1 to {MAX_NODES}")
    logging.basicConfig(level=logging.WARNING)
    out = asyncio.run(measure(counts, args.events, args.rounds))
    show(out)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
