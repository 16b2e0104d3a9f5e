"""The cluster tier (issue 16): two sandbox Asterisk nodes with a SIP trunk between them
(tests/support/cluster.py), two `pbx-bridge serve` replicas on one real PostgreSQL
configured with both nodes (tests/support/replicas.py), real baresip phones on both."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from devtools.phones import Phone
from devtools.sandbox import Sandbox, SandboxError
from tests.reliability.support import connect_observer
from tests.support.bridge import DEMO_DIRECTORY
from tests.support.cluster import (
    NODE1,
    NODE2,
    AdminApi,
    Cluster,
    admin_token,
    cluster_directory,
    node2_sandbox,
    nodes_environ,
    nodes_toml,
    start_pair,
)
from tests.support.fixtures import _clean, _empty_monitor, sandbox  # noqa: F401
from tests.support.pbx import EventLog
from tests.support.replicas import Replicas, start_replicas


@pytest.fixture(scope="package")  # once for the tier: each node boots once
def cluster_pbx(sandbox: Sandbox) -> Iterator[Cluster]:  # noqa: F811
    """The session's sandbox as node 1 and a second instance as node 2, each with its
    systemname and the trunk to the other; node 1 is given back fresh afterwards."""
    node2 = node2_sandbox(sandbox)
    try:
        node2.stop()  # a run that died may have left it
        if node2.busy_ports():
            raise SandboxError(f"node 2's ports {node2.busy_ports()} are in use")
        sandbox.stop()
        start_pair(sandbox, node2)
    except SandboxError as exc:
        pytest.fail(f"the two-node cluster could not start: {exc}", pytrace=False)
    Phone.kill_stale(node2)
    try:
        yield Cluster(sandbox, node2)
    finally:
        Phone.kill_stale(node2)
        node2.stop()
        sandbox.stop()
        sandbox.start(timeout=90)  # the other tiers' pristine sandbox


@pytest.fixture
async def cluster(cluster_pbx: Cluster) -> AsyncIterator[Cluster]:
    """Both nodes running, with no live channel before and after the test."""
    for node in cluster_pbx.nodes.values():
        if not node.running():
            await asyncio.to_thread(node.start, 90, fresh=False)
        await _clean(node)
        _empty_monitor(node)
    yield cluster_pbx
    for node in cluster_pbx.nodes.values():
        if node.running():
            await _clean(node)


@pytest.fixture
async def observers(cluster: Cluster) -> AsyncIterator[dict[str, EventLog]]:
    """Each node's AMI events through the harness's own client (`.client`), by node."""
    logs = {name: await connect_observer(node) for name, node in cluster.nodes.items()}
    try:
        yield logs
    finally:
        for log in logs.values():
            await log.client.close()  # type: ignore[attr-defined]


@pytest.fixture
async def replicas(cluster: Cluster, postgres_server, tmp_path) -> AsyncIterator[Replicas]:
    """Two replicas configured with both nodes ([[pbx]] in a settings file, the secrets
    in PBX_BRIDGE_PBX_SECRETS__<NAME>), both nodes ready on both."""
    config = nodes_toml(cluster.node1, cluster.node2, tmp_path / "nodes.toml")
    directory = cluster_directory(DEMO_DIRECTORY, tmp_path / "directory.toml")
    async with start_replicas(
        cluster.node1, postgres_server, tmp_path, directory_file=directory,
        **nodes_environ(cluster.node1, cluster.node2, config),
    ) as group:
        for replica in group.members:
            for name in (NODE1, NODE2):
                await wait_node_ready(replica, name)
        yield group


async def wait_node_ready(replica, name: str, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status, body = await replica.request("GET", f"/readyz/{name}")
        if status == 200:
            return
        if loop.time() > deadline:
            raise AssertionError(f"replica {replica.name}: node {name} not ready: {body}")
        await asyncio.sleep(0.1)


@pytest.fixture
async def phones(cluster: Cluster) -> AsyncIterator[Callable[..., object]]:
    """Factory: `await phones("0003*211")` starts a baresip phone registered on the
    extension's own node (auto-answering unless told otherwise); all stop at the end."""
    started: list[Phone] = []

    async def make(ext: str, **kw: object) -> Phone:
        kw.setdefault("auto_answer", True)
        phone = Phone(cluster.sandbox_of(ext), ext, **kw)  # type: ignore[arg-type]
        await phone.start()
        started.append(phone)
        return phone

    try:
        yield make
    finally:
        for phone in started:
            with contextlib.suppress(Exception):
                await phone.stop()


@pytest.fixture
def apis(replicas: Replicas) -> list[AdminApi]:
    """The admin's API through replica A and through replica B."""
    token = admin_token(replicas.database_url)
    return [AdminApi(r, token) for r in replicas.members]
