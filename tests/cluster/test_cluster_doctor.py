"""`pbx-bridge doctor` on the two real nodes of the tier (issue 16): every check passes on
each node, with that node's own login, extensions, recordings folder and AstDB; a node
that cannot be reached (wrong port, wrong secret) fails only its own lines while the
other still passes; two [[pbx]] entries whose Asterisks answer the same systemname fail
with the fix. No Asterisk is started or restarted here."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from pbx_bridge.config import Settings
from pbx_bridge.directory.store import Directory
from pbx_bridge.doctor.report import Finding
from pbx_bridge.doctor.run import diagnose
from pbx_bridge.server import Services
from tests.integration.test_doctor import ALL
from tests.support.bridge import DEMO_DIRECTORY
from tests.support.cluster import (
    NODE1,
    NODE2,
    ON_NODE2,
    Cluster,
    cluster_directory,
    nodes_environ,
    nodes_toml,
)

EVERY = ALL | {"systemname"}  # with several nodes, each node's list ends with it


def _entry(name: str, port: int, secret: str, monitor_dir: Path, root: Path) -> dict[str, Any]:
    return {"name": name, "port": port, "secret": secret, "connect_timeout": 2.0,
            "ping_interval": 1.0, "ping_timeout": 1.0, "backoff_cap": 1.0,
            "action_timeout": 3.0,
            "recordings": {"monitor_dir": str(monitor_dir), "host_root": str(root)}}


def _settings(cluster: Cluster, tmp_path: Path, **node2: Any) -> Settings:
    """Both nodes as the tier's bridges have them; ``node2`` replaces keys of node 2's."""
    one, two = cluster.node1, cluster.node2
    return Settings(
        pbx=[_entry(NODE1, one.ami_port, one.secrets.ami, one.monitor_dir, one.root),
             {**_entry(NODE2, two.ami_port, two.secrets.ami, two.monitor_dir, two.root),
              **node2}],
        database={"url": f"sqlite:///{tmp_path / 'directory.sqlite3'}"},
    )


async def _directory_and_policy(cluster: Cluster, tmp_path: Path) -> Directory:
    """The tier's directory (node = "pbx2" on ON_NODE2), and each node's AstDB policy
    written as `serve` writes it (each node gets its own extensions' keys)."""
    directory = Directory.open(tmp_path / "directory.sqlite3")
    directory.load_toml(cluster_directory(DEMO_DIRECTORY, tmp_path / "directory.toml"))
    bridge = Services(_settings(cluster, tmp_path), directory)
    await bridge.start()
    try:
        for node in bridge.nodes.all:
            await asyncio.wait_for(node.recording.policy.synced.wait(), 20)
    finally:
        await bridge.close()
    return directory


def _doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pbx_bridge.cli", "doctor", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def _by_node(found: list[Finding]) -> dict[str, dict[str, Finding]]:
    out: dict[str, dict[str, Finding]] = {}
    for f in found:
        out.setdefault(f.node, {})[f.check] = f
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_doctor_passes_on_each_node_with_its_own_share(cluster: Cluster, tmp_path) -> None:
    directory = await _directory_and_policy(cluster, tmp_path)
    on_node1 = len(directory.all_extensions()) - len(ON_NODE2)
    directory.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    env.update(nodes_environ(cluster.node1, cluster.node2,
                             nodes_toml(cluster.node1, cluster.node2, tmp_path / "nodes.toml")),
               PBX_BRIDGE_DATABASE__URL=f"sqlite:///{tmp_path / 'directory.sqlite3'}")
    proc = _doctor(env, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True and report["nodes"] == {NODE1: True, NODE2: True}
    checks = {(c["node"], c["check"]): c for c in report["checks"]}
    assert set(checks) == {(n, c) for n in (NODE1, NODE2) for c in EVERY}
    # Each node's own share: its extensions, its folder, its systemname.
    assert f"all {len(ON_NODE2)} extensions'" in checks[NODE2, "endpoints"]["detail"]
    assert f"all {on_node1} extensions'" in checks[NODE1, "endpoints"]["detail"]
    assert str(cluster.node2.monitor_dir) in checks[NODE2, "monitor-folder"]["detail"]
    assert str(cluster.node1.monitor_dir) in checks[NODE1, "monitor-folder"]["detail"]
    assert checks[NODE2, "systemname"]["detail"].startswith(f"'{NODE2}'")
    # --node: that node only, each line naming it (several nodes are configured).
    proc = _doctor(env, "--node", NODE2)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert all(line.startswith(f"ok   [{NODE2}] ") for line in lines[:-1]), lines
    assert lines[-1] == f"{len(EVERY)} of {len(EVERY)} checks passed ({NODE2} ok)"
    proc = _doctor(env, "--node", "pbx9")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("pbx-bridge doctor: --node: no PBX node is named 'pbx9'")


async def test_an_unreachable_node_fails_alone(cluster: Cluster, tmp_path) -> None:
    directory = await _directory_and_policy(cluster, tmp_path)
    for broken, detail, hint in (
        ({"port": _free_port()}, "nothing answers on", "host/port of the [[pbx]] entry 'pbx2'"),
        ({"secret": "wrong-secret"}, "AMI refused the login", "PBX_BRIDGE_PBX_SECRETS__PBX2"),
    ):
        found = _by_node(await diagnose(_settings(cluster, tmp_path, **broken), directory))
        assert list(found[NODE2]) == ["ami-login"], found[NODE2]
        login = found[NODE2]["ami-login"]
        assert login.status == "fail" and detail in login.detail and hint in login.hint, login
        # Node 1 is checked all the same, and passes.
        assert set(found[NODE1]) == EVERY
        assert [f.line() for f in found[NODE1].values() if f.status != "pass"] == []
        assert "not compared with pbx2" in found[NODE1]["systemname"].detail
    directory.close()


async def test_two_entries_answering_one_systemname_fail_with_the_fix(
    cluster: Cluster, tmp_path
) -> None:
    """Node 2's entry pointing at node 1's Asterisk (a copy-paste an admin makes): both
    answer SystemName pbx1, which `serve` would keep unready."""
    directory = Directory.open(tmp_path / "directory.sqlite3")
    directory.load_toml(cluster_directory(DEMO_DIRECTORY, tmp_path / "directory.toml"))
    one = cluster.node1
    found = _by_node(await diagnose(
        _settings(cluster, tmp_path, port=one.ami_port, secret=one.secrets.ami), directory))
    directory.close()
    for node, other in ((NODE1, NODE2), (NODE2, NODE1)):
        check = found[node]["systemname"]
        assert check.status == "fail", check
        assert check.detail == f"its Asterisk systemname '{NODE1}' is also node '{other}''s"
        assert check.hint.startswith(f"systemname = {node} in asterisk.conf [options]")
