"""A Transfer across nodes (contract 8 on two nodes): node 1's 0003*210 talks to node 2's
0003*211; through replica B, 0003*211's view transfers the other party (the trunk leg
from node 1) to 0003*213, which lives on node 1 and is recorded "always". Asterisk on
node 2 sends the call back over the trunk (a hairpin: the blind transfer has no way to
hand the leg back to node 1), so node 1 has two calls meeting at node 2. Both replicas
list what each node has: 0003*211 in nothing, 0003*213 in its own incoming call with the
caller's number carried across, recording (its node's dialplan started it on answer)."""

from __future__ import annotations

import asyncio

from tests.reliability.support import pbx_truth
from tests.support.cluster import NODE1, NODE2, AdminApi, Cluster
from tests.support.pbx import EventLog

from .test_cluster_calls import check_lists, listed, same

CALLER, FIRST, THEN = "0003*210", "0003*211", "0003*213"  # node 1, node 2, node 1


async def test_transfer_of_a_node2_call_to_a_node1_extension(
    cluster: Cluster, apis: list[AdminApi], phones, observers: dict[str, EventLog]
) -> None:
    caller = await phones(CALLER, auto_answer=False)
    await phones(FIRST)
    then = await phones(THEN)
    await caller.dial(FIRST)
    await caller.wait_event("CALL_ESTABLISHED")
    ids = await check_lists(apis, observers, {
        CALLER: (NODE1, "4", [CALLER, FIRST]), FIRST: (NODE2, "8", [CALLER, FIRST])})
    status, body = await apis[1].put(FIRST, ids[FIRST], {
        "action": "Transfer", "phoneCallViewId": "01", "sendCallTo": THEN})
    assert status == 200 and body["phoneCallView"] == [], body  # FIRST has left
    await then.wait_event("CALL_ESTABLISHED")
    assert [await listed(api, FIRST, 0) for api in apis] == [[], []]
    await observers[NODE1].wait_for(
        "MixMonitorStart", where=lambda e: e["Channel"].startswith(f"PJSIP/{THEN}-"))
    for _ in range(100):  # each replica's tracker has that event too, a moment later
        seen = [same(await listed(api, THEN)) for api in apis]
        if all("recording" in c["phoneCallView"][0] for s in seen for c in s):
            break
        await asyncio.sleep(0.05)
    assert seen[0] == seen[1] and len(seen[0]) == 1, seen
    [view] = seen[0][0]["phoneCallView"]
    assert (view["flow"], view["source"], view["destination"]) == ("8", [CALLER], [THEN])
    assert "recording" in view, view
    node1 = await pbx_truth(observers[NODE1].client)  # type: ignore[attr-defined]
    node2 = await pbx_truth(observers[NODE2].client)  # type: ignore[attr-defined]
    recorded = [c for c in node1.values() if c.name.startswith(f"PJSIP/{THEN}-")]
    assert [c.mixmonitors for c in recorded] == [1], node1
    assert {c.name.rsplit("-", 1)[0] for c in node2.values()} == {"PJSIP/pbx1"}, node2
    assert sorted(c.name.rsplit("-", 1)[0] for c in node1.values()) == [
        f"PJSIP/{CALLER}", f"PJSIP/{THEN}", "PJSIP/pbx2", "PJSIP/pbx2"], node1
    # the caller's own call is still the one it started
    assert [[c["id"] for c in await listed(api, CALLER)] for api in apis] == [
        [ids[CALLER]], [ids[CALLER]]]
    await caller.hangup()
