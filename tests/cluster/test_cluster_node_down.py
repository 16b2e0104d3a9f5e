"""Node 2 stops (issue 16, "Done when"): node 1's calls keep working on both replicas,
node 2's extensions and calls answer 503 pbx_unavailable, /readyz/pbx2 says why, and
everything comes back once node 2 runs again. Each step is checked against what the
Asterisks themselves have."""

from __future__ import annotations

import asyncio
import json

from tests.reliability.support import START, STOP, pbx_truth
from tests.support.cluster import NODE1, NODE2, AdminApi, Cluster
from tests.support.pbx import EventLog
from tests.support.replicas import PBX_BRIDGE

from .test_cluster_calls import check_lists, listed

ON1, ON2 = "0004*210", "0003*211"  # a caller on each node


async def node_status(api: AdminApi, node: str | None = None) -> tuple[int, object]:
    return await api.request("GET", f"/readyz/{node}" if node else "/readyz")


async def wait_status(apis: list[AdminApi], node: str, status: int, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for api in apis:
        while (answer := await node_status(api, node))[0] != status:
            assert loop.time() < deadline, (api.replica.name, node, answer)
            await asyncio.sleep(0.1)


async def nodes_command(api: AdminApi) -> tuple[int, list[dict]]:
    """`pbx-bridge nodes --json` asking this replica (the [[pbx]] list: its config)."""
    proc = await asyncio.create_subprocess_exec(
        str(PBX_BRIDGE), "nodes", "--json", "--url", api.replica.base, env=api.replica.env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, json.loads(out) if out.strip() else [{"stderr": err.decode()}]


async def recording_works(apis: list[AdminApi], observer: EventLog, ext: str, cid: str) -> None:
    """Started through A and stopped through B; Asterisk's MixMonitors say so."""
    a, b = apis
    status, body = await a.put(ext, cid, START)
    assert status == 200 and "recording" in body["phoneCallView"][0], body
    started = await observer.wait_for("MixMonitorStart",
                                      where=lambda e: e["Channel"].startswith(f"PJSIP/{ext}-"))
    truth = await pbx_truth(observer.client)  # type: ignore[attr-defined]
    assert truth[started["Uniqueid"]].mixmonitors == 1
    status, body = await b.put(ext, cid, STOP)
    assert status == 200 and "recording" not in body["phoneCallView"][0], body
    await observer.wait_for("MixMonitorStop", Channel=started["Channel"])


async def test_node2_down_leaves_node1_working_and_recovers(
    cluster: Cluster, apis: list[AdminApi], phones, observers: dict[str, EventLog]
) -> None:
    one = await phones(ON1, auto_answer=False)
    two = await phones(ON2, auto_answer=False)
    await one.dial("7778888")
    await two.dial("7778888")
    await one.wait_event("CALL_ESTABLISHED")
    await two.wait_event("CALL_ESTABLISHED")
    ids = await check_lists(apis, observers, {
        ON1: (NODE1, "4", [ON1, "7778888"]), ON2: (NODE2, "4", [ON2, "7778888"])})
    before = await pbx_truth(observers[NODE1].client)  # type: ignore[attr-defined]

    await asyncio.to_thread(cluster.node2.stop)
    await wait_status(apis, NODE2, 503)
    for api in apis:
        status, body = await node_status(api, NODE2)
        assert body["error"]["code"] == "pbx_unavailable", body
        assert await node_status(api, NODE1) == (200, {"status": "ok", "node": NODE1})
        assert (await node_status(api))[0] == 200
        code, report = await nodes_command(api)
        assert code == 1, report
        assert [(n["node"], n["ready"]) for n in report] == [(NODE1, True), (NODE2, False)]
        # node 2's extension and call: 503, never an empty list or "no such call"
        for status, body in (await api.list(ON2), await api.get(ON2, ids[ON2]),
                             await api.put(ON2, ids[ON2], START)):
            assert status == 503 and body["error"]["code"] == "pbx_unavailable", body
    # node 1's call: untouched in Asterisk, listed alike by both, and its actions work
    after = await pbx_truth(observers[NODE1].client)  # type: ignore[attr-defined]
    assert {u: c.name for u, c in after.items()} == {u: c.name for u, c in before.items()}
    seen = [[{**c, "link": None} for c in await listed(api, ON1)] for api in apis]
    assert seen[0] == seen[1] and [c["id"] for c in seen[0]] == [ids[ON1]], seen
    await recording_works(apis, observers[NODE1], ON1, ids[ON1])

    await asyncio.to_thread(cluster.node2.start, 90, fresh=False)
    await wait_status(apis, NODE2, 200)
    await observers[NODE2].client.wait_connected(10)  # type: ignore[attr-defined]
    assert [(await nodes_command(api))[0] for api in apis] == [0, 0]
    assert [await listed(api, ON2, 0) for api in apis] == [[], []]  # its call died with it
    await two.dial("7778888")
    await two.wait_event("CALL_ESTABLISHED")
    ids = await check_lists(apis, observers, {
        ON1: (NODE1, "4", [ON1, "7778888"]), ON2: (NODE2, "4", [ON2, "7778888"])})
    await recording_works(apis, observers[NODE2], ON2, ids[ON2])
    await one.hangup()
    await two.hangup()
