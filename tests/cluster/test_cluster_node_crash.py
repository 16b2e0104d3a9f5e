"""Node 2 dies (SIGKILL: no shutdown, no BYE) during a call that crosses the trunk, next
to a call that stays on node 1 (issue 16: "nothing lost when one of them dies"). The
bridge shows what node 1's Asterisk has: the crossing call's node-1 half stays until
Asterisk ends it (the trunk's rtp_timeout: no media came from the dead node), the other
call is untouched; node 2's extensions answer 503 meanwhile; after node 2 is back, calls
cross again (once the callee's phone registered again: the crash lost it)."""

from __future__ import annotations

import asyncio
import time

from tests.reliability.support import pbx_truth, report
from tests.support.cluster import NODE1, NODE2, RTP_TIMEOUT, AdminApi, Cluster
from tests.support.pbx import EventLog

from .test_cluster_calls import check_lists, listed
from .test_cluster_node_down import wait_status

CROSS, LOCAL = "0003*210", "0004*210"  # node-1 callers: to node 2, to a public number
CALLEE = "0003*211"  # node 2


async def node1_channels(observer: EventLog) -> set[str]:
    truth = await pbx_truth(observer.client, mixmonitors=False)  # type: ignore[attr-defined]
    return {ch.name.rsplit("-", 1)[0] for ch in truth.values()}


async def test_node2_crash_ends_only_the_calls_that_crossed_to_it(
    cluster: Cluster, apis: list[AdminApi], phones, observers: dict[str, EventLog]
) -> None:
    cross = await phones(CROSS, auto_answer=False)
    local = await phones(LOCAL, auto_answer=False)
    callee = await phones(CALLEE)
    await cross.dial(CALLEE)
    await local.dial("7778888")
    await cross.wait_event("CALL_ESTABLISHED")
    await local.wait_event("CALL_ESTABLISHED")
    ids = await check_lists(apis, observers, {
        CROSS: (NODE1, "4", [CROSS, CALLEE]), CALLEE: (NODE2, "8", [CROSS, CALLEE]),
        LOCAL: (NODE1, "4", [LOCAL, "7778888"])})

    t0 = time.monotonic()
    await asyncio.to_thread(cluster.node2.kill)
    await wait_status(apis, NODE2, 503)
    unready_after = time.monotonic() - t0
    for api in apis:
        status, body = await api.list(CALLEE)
        assert status == 503 and body["error"]["code"] == "pbx_unavailable", body
    # Node 1 ends the crossing call's half by itself; until then both list it, as it is.
    while f"PJSIP/{CROSS}" in await node1_channels(observers[NODE1]):
        assert time.monotonic() - t0 < RTP_TIMEOUT + 20, "node 1 kept the dead call"
        await asyncio.sleep(0.1)
    ended_after = time.monotonic() - t0
    assert [await listed(api, CROSS, 0) for api in apis] == [[], []]
    assert await node1_channels(observers[NODE1]) >= {f"PJSIP/{LOCAL}"}
    seen = [[c["id"] for c in await listed(api, LOCAL)] for api in apis]
    assert seen == [[ids[LOCAL]], [ids[LOCAL]]], seen
    assert ended_after >= RTP_TIMEOUT - 1  # ended by the timeout, not by a BYE

    await asyncio.to_thread(cluster.node2.start, 90, fresh=False)
    await wait_status(apis, NODE2, 200)
    back_after = time.monotonic() - t0
    await observers[NODE2].client.wait_connected(10)  # type: ignore[attr-defined]
    # The crash lost the registration (AstDB had not kept it): the phone registers
    # again, as a real one does on its next refresh.
    await callee.stop()
    await phones(CALLEE)
    await cross.dial(CALLEE)
    await cross.wait_event("CALL_ESTABLISHED")
    await check_lists(apis, observers, {
        CROSS: (NODE1, "4", [CROSS, CALLEE]), CALLEE: (NODE2, "8", [CROSS, CALLEE]),
        LOCAL: (NODE1, "4", [LOCAL, "7778888"])})
    report("cluster_node2_crash", node2_unready_on_both_s=round(unready_after, 2),
           crossing_half_ended_s=round(ended_after, 2), rtp_timeout_s=RTP_TIMEOUT,
           node2_ready_again_s=round(back_after, 2))
    await cross.hangup()
    await local.hangup()
