"""Two Asterisk nodes, a trunk between them, two replicas (issue 16, "Done when"):
phones on both nodes call each other and a public number; both replicas list the same
calls, each extension's view is that of its own node's call, and what they list is what
each Asterisk has (CoreShowChannels through the harness's own AMI client)."""

from __future__ import annotations

import asyncio
from typing import Any

from pbx_bridge.calls.tracker import call_id
from tests.reliability.support import pbx_truth
from tests.support.cluster import NODE1, NODE2, AdminApi, Cluster
from tests.support.pbx import EventLog, wait_no_channels


async def listed(api: AdminApi, ext: str, n: int = 1, timeout: float = 10.0) -> list[dict]:
    """The replica's list for ext once it holds n calls."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        calls = await api.calls(ext)
        if len(calls) == n or loop.time() > deadline:
            return calls
        await asyncio.sleep(0.05)


def same(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**e, "link": None} for e in entries]  # link.self: the host the client asked


async def truth_ids(observer: EventLog) -> dict[str, set[str]]:
    """call id -> the channel names Asterisk has in that call (by Linkedid)."""
    out: dict[str, set[str]] = {}
    for ch in (await pbx_truth(observer.client, mixmonitors=False)).values():  # type: ignore[attr-defined]
        out.setdefault(call_id(ch.linkedid), set()).add(ch.name)
    return out


async def check_lists(apis: list[AdminApi], observers: dict[str, EventLog],
                      expected: dict[str, tuple[str, str, list[str]]]) -> dict[str, str]:
    """Both replicas list the same one call for each extension, on its own node (the id
    is one Asterisk's Linkedid there, and the other node has no such call), with the
    extension's view: (node, flow, [source, destination]). Returns ext -> call id."""
    truth = {name: await truth_ids(log) for name, log in observers.items()}
    ids = {}
    for ext, (node, flow, parties) in expected.items():
        seen = [same(await listed(api, ext)) for api in apis]
        assert seen[0] == seen[1], (ext, seen)
        assert len(seen[0]) == 1, (ext, seen[0])
        call = seen[0][0]
        assert call["id"] in truth[node], (ext, node, call["id"], truth)
        assert all(call["id"] not in t for n, t in truth.items() if n != node), truth
        [view] = call["phoneCallView"]
        assert view["extension"] == ext and view["flow"] == flow, (ext, view)
        assert [*view["source"], *view["destination"]] == parties, (ext, view)
        ids[ext] = call["id"]
    return ids


async def test_calls_between_nodes_and_to_a_public_number(
    cluster: Cluster, apis: list[AdminApi], phones, observers: dict[str, EventLog]
) -> None:
    """Across the trunk both ways at once, then each node's phone to a public number."""
    john1 = await phones("0003*210", auto_answer=False)  # node 1
    await phones("0003*211")  # node 2, answers
    jane2 = await phones("0003*212", auto_answer=False)  # node 2
    await phones("0004*210")  # node 1, answers
    await john1.dial("0003*211")  # node 1 -> node 2
    await jane2.dial("0004*210")  # node 2 -> node 1
    await john1.wait_event("CALL_ESTABLISHED")
    await jane2.wait_event("CALL_ESTABLISHED")
    ids = await check_lists(apis, observers, {
        # the caller's view on its node (outgoing), the callee's on the other (incoming
        # through the trunk, the caller's number carried across)
        "0003*210": (NODE1, "4", ["0003*210", "0003*211"]),
        "0003*211": (NODE2, "8", ["0003*210", "0003*211"]),
        "0003*212": (NODE2, "4", ["0003*212", "0004*210"]),
        "0004*210": (NODE1, "8", ["0003*212", "0004*210"]),
    })
    assert len(set(ids.values())) == 4
    # A call id of the other node's side is no call of this extension, on both replicas.
    for api in apis:
        status, body = await api.get("0003*211", ids["0003*210"])
        assert status == 400, (api.replica.name, status, body)
        status, body = await api.get("0003*211", ids["0003*211"])
        assert status == 200 and body["id"] == ids["0003*211"], body
    await john1.hangup()
    await jane2.hangup()

    await john1.dial("7778888")
    await jane2.dial("7778888")
    await john1.wait_event("CALL_ESTABLISHED")
    await jane2.wait_event("CALL_ESTABLISHED")
    await check_lists(apis, observers, {
        "0003*210": (NODE1, "4", ["0003*210", "7778888"]),
        "0003*212": (NODE2, "4", ["0003*212", "7778888"]),
    })
    for ext in ("0003*211", "0004*210"):
        assert [await listed(api, ext, 0) for api in apis] == [[], []]
    await john1.hangup()
    await jane2.hangup()
    for ext in ("0003*210", "0003*212"):
        assert [await listed(api, ext, 0) for api in apis] == [[], []]
    for node in cluster.nodes.values():  # and Asterisk has nothing left either
        await wait_no_channels(node)
