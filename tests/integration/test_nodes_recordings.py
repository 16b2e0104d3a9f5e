"""Several PBX nodes (issue 16) against two real sandbox Asterisks, each with its own
``systemname`` (docs/deployment-nodes.md) and its own monitor folder: a recording on node
2 (a Local call originated there, StartRecording through the bridge's API) gets a catalog
row of node 2, is finished from the file in node 2's folder (``[[pbx]] recordings``), and
its media downloads; each node's AstDB holds the recording policy of its own extensions
only. Small on purpose: the full tier (trunk, replicas, phones) is another test's."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from devtools.sandbox import Sandbox, SandboxError
from pbx_bridge.api.app import create_app
from pbx_bridge.config import Settings
from pbx_bridge.directory.store import Directory
from pbx_bridge.pbx.ami import AmiClient
from pbx_bridge.server import Services
from tests.support.bridge import eventually
from tests.support.pbx import HARNESS_USER

EXT1, EXT2 = "0009*611", "0009*602"
DEVICE2 = "Local/600@from-internal"  # asterisk-conf: 600 answers and echoes
DIRECTORY = f"""
[[organizations]]
id = 9
name = "Nodes Organization"
code = "0009"

[[users]]
id = 90
name = "Nodes User"
role = "user"
organization = 9

[[extensions]]
number = "{EXT1}"
owner = 90
device = "PJSIP/{EXT1}"
recording = {{ enabled = true, trigger = "star1", format = "wav" }}

[[extensions]]
number = "{EXT2}"
owner = 90
device = "{DEVICE2}"
node = "pbx2"
recording = {{ enabled = true, trigger = "star1", format = "wav" }}
"""


def _node(index: int) -> Sandbox:
    """Node 1 or 2: its own instance and ports, next to the suite's own sandbox."""
    name = os.environ.get("PBX_BRIDGE_SANDBOX_NAME", "test")
    offset = int(os.environ.get("PBX_BRIDGE_SANDBOX_PORT_OFFSET", "0"))
    return Sandbox(name=f"{name}-{index}", port_offset=offset + 350 * index)


@pytest.fixture(scope="module")
def nodes() -> Iterator[tuple[Sandbox, Sandbox]]:
    started: list[Sandbox] = []
    try:
        for index in (1, 2):
            sb = _node(index)
            sb.stop()
            sb.prepare()
            # asterisk.conf ends in [options]: each node puts its systemname in front of
            # every Uniqueid and Linkedid, as the bridge requires of several nodes.
            with open(sb.instance_dir / "etc" / "asterisk.conf", "a") as conf:
                conf.write(f"\nsystemname = pbx{index}\n")
            sb.start(timeout=90, fresh=False)
            started.append(sb)
    except SandboxError as exc:
        for sb in started:
            sb.stop()
        pytest.fail(f"a node's sandbox could not start: {exc}", pytrace=False)
    try:
        yield started[0], started[1]
    finally:
        for sb in started:
            sb.stop()


def _settings(one: Sandbox, two: Sandbox, tmp_path: Path) -> Settings:
    ami = {"ping_interval": 1.0, "ping_timeout": 1.0, "backoff_cap": 1.0,
           "action_timeout": 3.0}
    return Settings(
        ami=ami,
        pbx=[
            {"name": "pbx1", "port": one.ami_port, "secret": one.secrets.ami},
            {"name": "pbx2", "port": two.ami_port, "secret": two.secrets.ami,
             "recordings": {"monitor_dir": str(two.monitor_dir)}},
        ],
        database={"url": f"sqlite:///{tmp_path / 'directory.sqlite3'}"},
        recordings={"monitor_dir": str(one.monitor_dir), "host_root": str(one.root),
                    "settle_interval": 0.2},
    )


async def _originate(sb: Sandbox) -> None:
    client = AmiClient("127.0.0.1", sb.ami_port, HARNESS_USER, sb.secrets.harness)
    await client.start()
    try:
        await client.wait_connected(10)
        await client.send_action("Originate", {
            "Channel": DEVICE2, "Application": "Wait", "Data": "30", "Async": "true"})
    finally:
        await client.close()


@pytest.fixture
async def bridge(nodes: tuple[Sandbox, Sandbox], tmp_path: Path
                 ) -> AsyncIterator[tuple[Services, aiohttp.ClientSession, str, dict]]:
    toml = tmp_path / "directory.toml"
    toml.write_text(DIRECTORY)
    directory = Directory.open(tmp_path / "directory.sqlite3")
    directory.load_toml(toml)
    settings = _settings(*nodes, tmp_path)
    services = Services(settings, directory)
    server = TestServer(create_app(settings, directory, services), host="127.0.0.1")
    await server.start_server()
    client_id, _ = directory.create_app(90, "nodes test")
    auth = {"Authorization": f"Bearer {directory.issue_token(client_id)[0]}"}
    try:
        await eventually(lambda: all(services.nodes.is_ready(n) for n in services.nodes.all),
                         20, "both nodes ready")
        async with aiohttp.ClientSession() as http:
            yield services, http, str(server.make_url("")).rstrip("/"), auth
    finally:
        await server.close()
        for sb in nodes:
            await asyncio.to_thread(sb.cli, "channel request hangup all")


async def test_a_recording_on_node_2_is_catalogued_read_and_served_from_node_2(
    nodes: tuple[Sandbox, Sandbox], bridge: tuple[Services, aiohttp.ClientSession, str, dict],
) -> None:
    one, two = nodes
    services, http, base, auth = bridge
    node2 = services.nodes.all[1].link
    await _originate(two)
    await eventually(lambda: node2.tracker.calls_of(EXT2), 15, "the call on node 2")
    (call,) = node2.tracker.calls_of(EXT2)
    assert call.linkedid.startswith("pbx2-")  # node 2's systemname
    calls = f"{base}/uapi/phoneCalls/@me/{EXT2}/{call.id}"
    async with http.put(calls, json={"action": "StartRecording", "phoneCallViewId": "01"},
                        headers=auth) as r:
        assert r.status == 200, await r.text()
    await asyncio.sleep(1.0)  # a second of audio
    async with http.put(calls, json={"action": "StopRecording", "phoneCallViewId": "01"},
                        headers=auth) as r:
        assert r.status == 200, await r.text()

    rows: list[dict] = []

    async def finished() -> bool:
        nonlocal rows
        async with http.get(f"{base}/uapi/recordings/@me/{EXT2}", headers=auth) as r:
            rows = (await r.json())["entry"] if r.status == 200 else []
        return len(rows) == 1 and rows[0]["state"] not in ("recording", "paused")

    async with asyncio.timeout(20):
        while not await finished():
            await asyncio.sleep(0.2)
    (entry,) = rows
    assert entry["state"] == "completed", entry
    stored = await services.recordings.get(entry["id"])
    assert stored is not None and stored.node == "pbx2"
    path = Path(stored.host_path or "")
    assert path.is_relative_to(two.monitor_dir) and path.is_file()
    assert not list(one.monitor_dir.rglob("*.wav"))  # nothing on node 1
    data = path.read_bytes()
    assert entry["size"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()
    async with http.get(f"{base}/uapi/recordings/@me/{EXT2}/{entry['id']}/media",
                        headers=auth) as r:
        assert r.status == 200 and await r.read() == data

    # Each node's AstDB: the recording policy of its own extensions only.
    astdb = [await asyncio.to_thread(sb.cli, "database show pbx_bridge") for sb in nodes]
    assert EXT1 in astdb[0] and EXT2 not in astdb[0]
    assert EXT2 in astdb[1] and EXT1 not in astdb[1]
