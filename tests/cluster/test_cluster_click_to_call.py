"""Click-to-call from an extension on node 2 to one on node 1 (issue 16: "PhoneCall ids
are unique across nodes"; contract 9: click-to-call starts on the extension's node).
The call is placed on node 2 through replica A, crosses the trunk, is listed alike by
both replicas, and hung up through replica B; its id is that of node 2's Linkedid,
which carries node 2's systemname like every other call of that node."""

from __future__ import annotations

from pbx_bridge.calls.tracker import call_id
from tests.reliability.support import pbx_truth
from tests.support.cluster import NODE1, NODE2, AdminApi, Cluster
from tests.support.pbx import EventLog, wait_no_channels

from .test_cluster_calls import check_lists, listed

CALLER, CALLEE = "0003*211", "0003*210"  # node 2, node 1 (both John's)


async def test_click_to_call_from_node2_to_node1(
    cluster: Cluster, apis: list[AdminApi], phones, observers: dict[str, EventLog]
) -> None:
    a, b = apis
    first = await phones(CALLER)
    second = await phones(CALLEE)
    status, placed = await a.request("POST", "/uapi/phoneCalls/12/simple", {
        "extension": CALLER, "nonce": "cluster-ctc.1",
        "phoneCallView": [{"destination": [CALLEE]}]})
    assert status == 201, placed
    await first.wait_event("CALL_ESTABLISHED")  # its phone answered, then Asterisk
    await second.wait_event("CALL_ESTABLISHED")  # dialled the other over the trunk
    ids = await check_lists(apis, observers, {
        CALLER: (NODE2, "4", [CALLER, CALLEE]), CALLEE: (NODE1, "8", [CALLER, CALLEE])})
    assert ids[CALLER] == placed["id"]
    assert [c["nonce"] for c in await listed(b, CALLER)] == ["cluster-ctc.1"]
    # Asterisk's own Linkedid on node 2: the node's systemname in front, as for every
    # call Asterisk numbers itself (the bridge chose this one, in Originate's ChannelId).
    linked = {ch.linkedid for ch in (await pbx_truth(
        observers[NODE2].client, mixmonitors=False)).values()}  # type: ignore[attr-defined]
    assert {call_id(x) for x in linked} == {placed["id"]}
    assert all(x.startswith(f"{NODE2}-") for x in linked), linked

    status, hung = await b.request(
        "DELETE", f"/uapi/phoneCalls/12/{CALLER}/{placed['id']}")
    assert status == 200 and hung == {"hungUp": [placed["id"]]}, (status, hung)
    for ext in (CALLER, CALLEE):
        assert [await listed(api, ext, 0) for api in apis] == [[], []]
    for node in cluster.nodes.values():  # and Asterisk has nothing left either
        await wait_no_channels(node)
