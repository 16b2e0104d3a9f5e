"""bench/ingest_nodes.py (issue 16, ingest per node): K stand-in Asterisks blast at one
bridge. What makes the measure fair is checked here on a tiny run, never its timing:
every event of every node reaches that node's tracker, each node's calls are its own
(its systemname in the ids, so the shared events history keeps both nodes' calls apart),
and each node's tracker knows its own phones (events are only made for extensions it
maps)."""

from __future__ import annotations

import tomllib

from bench.bridge_replay import DIRECTORY, blocks
from bench.ingest_nodes import measure, node_blocks, node_directory, node_name
from bench.replay import rewrite
from pbx_bridge.directory.models import DirectoryFile


def _demo() -> DirectoryFile:
    return DirectoryFile.model_validate(tomllib.loads(DIRECTORY.read_text()))


def test_node_two_streams_its_own_ids_and_phones() -> None:
    base = blocks()
    stream = b"".join(rewrite(node_blocks(base, _demo(), 2), 1, node_name(2)))
    fields = [line.partition(b": ") for line in stream.split(b"\r\n")]
    ids = [value for key, _, value in fields
           if key.endswith((b"Uniqueid", b"Linkedid")) and b"." in value]
    assert ids and all(v.startswith(b"pbx2-") for v in ids)
    assert b"0003*" not in stream  # node 1's numbers
    assert b"PJSIP/1003*210-" in stream and b"|1003/1003*210/" in stream
    devices = {e.device: e.node for e in node_directory(_demo(), 2).extensions}
    assert devices["PJSIP/0003*210"] == "pbx1" and devices["PJSIP/1003*210"] == "pbx2"


async def test_two_nodes_every_event_reaches_its_node_and_call_ids_differ() -> None:
    res = await measure([1, 2], 1, 1)  # one repetition of the transcripts per node
    one, two = res["by_nodes"]["1"], res["by_nodes"]["2"]
    assert one["tracker_events"] == {"pbx1": res["events_per_node"]}
    assert two["tracker_events"] == two["sent_events"] == {
        "pbx1": res["events_per_node"], "pbx2": res["events_per_node"]}
    calls = res["transcripts"]["calls"]
    # Both nodes' calls reached the shared history as extensions of their own, all of
    # them, and no call id is both nodes'.
    assert two["call_ids"] == {"pbx1": calls, "pbx2": calls}
    assert two["shared_call_ids"] == 0
    assert one["call_ids"] == {"pbx1": calls}
