"""`pbx-bridge doctor` with several PBX nodes (issue 16), the parts that need no Asterisk:
each node's share of the directory and its folders, the systemname rule, lines and JSON
naming the node, an unreachable node failing only its own line, `--node`."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from pbx_bridge.cli import main
from pbx_bridge.config import Settings
from pbx_bridge.core.nodes import systemname_problem
from pbx_bridge.directory.store import Directory
from pbx_bridge.doctor.identity import systemname
from pbx_bridge.doctor.report import as_json, as_text, failed, passed
from pbx_bridge.doctor.run import UnknownNode, diagnose
from pbx_bridge.doctor.scope import scopes, unplaced
from tests.support.bridge import DEMO_DIRECTORY
from tests.support.cluster import ON_NODE2, cluster_directory


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _two_nodes(tmp_path: Path, port1: int = 5038, port2: int = 5039) -> Settings:
    return Settings(
        pbx=[{"name": "pbx1", "port": port1, "secret": "one"},
             {"name": "pbx2", "port": port2, "connect_timeout": 1.0,
              "recordings": {"monitor_dir": str(tmp_path / "pbx2-monitor")}}],
        pbx_secrets={"pbx2": "two"},
        recordings={"monitor_dir": str(tmp_path / "monitor")},
        database={"url": f"sqlite:///{tmp_path / 'directory.sqlite3'}"},
    )


def _directory(tmp_path: Path) -> Directory:
    directory = Directory.open(tmp_path / "directory.sqlite3")
    directory.load_toml(cluster_directory(DEMO_DIRECTORY, tmp_path / "directory.toml"))
    return directory


def test_each_node_gets_its_own_login_extensions_and_folder(tmp_path) -> None:
    with _directory(tmp_path) as directory:
        every = {s.name: s for s in scopes(_two_nodes(tmp_path), directory)}
        numbers = {name: {e.number for e in s.extensions.values()}
                   for name, s in every.items()}
        everyone = {e.number for e in directory.all_extensions()}
    assert list(every) == ["pbx1", "pbx2"]
    assert numbers["pbx2"] == set(ON_NODE2)  # node = "pbx2" in the directory
    assert numbers["pbx1"] == everyone - set(ON_NODE2)  # the rest name no node: the first's
    one, two = every["pbx1"], every["pbx2"]
    assert (one.node.port, two.node.port) == (5038, 5039)
    assert two.node.secret.get_secret_value() == "two"  # PBX_BRIDGE_PBX_SECRETS__PBX2
    assert one.recordings.monitor_dir == str(tmp_path / "monitor")  # [recordings]
    assert two.recordings.monitor_dir == str(tmp_path / "pbx2-monitor")  # [pbx.recordings]
    assert "PBX_BRIDGE_PBX_SECRETS__PBX2" in two.secret_setting()
    assert "'pbx2'" in two.address_setting() and "[pbx.recordings]" in \
        two.monitor_dir_setting()


def test_one_node_is_the_whole_directory_and_the_ami_section(tmp_path) -> None:
    settings = Settings(database={"url": f"sqlite:///{tmp_path / 'directory.sqlite3'}"})
    with _directory(tmp_path) as directory:
        (only,) = scopes(settings, directory)
        assert len(only.extensions) == len(directory.all_extensions()) - len(ON_NODE2)
    assert only.name == "pbx" and only.recordings == settings.recordings
    assert only.secret_setting().startswith("PBX_BRIDGE_AMI__SECRET")
    assert only.address_setting() == "[ami] host/port"


def test_systemname_is_the_rule_serve_applies() -> None:
    assert systemname("pbx1", {"pbx1": "a", "pbx2": "b"}).status == "pass"
    same = systemname("pbx2", {"pbx1": "a", "pbx2": "a"})
    assert same.status == "fail" and same.detail == systemname_problem("a", [("pbx1", "a")])
    assert "'pbx1'" in same.detail and same.hint.startswith("systemname = pbx2 in asterisk.conf")
    none = systemname("pbx2", {"pbx1": "a", "pbx2": ""})
    assert none.status == "fail" and "no systemname" in none.detail
    assert systemname("pbx1", {"pbx1": None, "pbx2": "b"}).status == "unknown"
    alone = systemname("pbx1", {"pbx1": "a", "pbx2": None})  # node 2 not reached
    assert alone.status == "pass" and "not compared with pbx2" in alone.detail


def test_lines_name_the_node_only_with_several_and_json_always() -> None:
    found = [replace(passed("ami-login", "in"), node="pbx1"),
             replace(failed("ami-login", "nothing answers", "port"), node="pbx2")]
    text = as_text(found, named=True).splitlines()
    assert text == ["ok   [pbx1] ami-login: in",
                    "FAIL [pbx2] ami-login: nothing answers -> fix: port",
                    "1 of 2 checks passed (pbx1 ok, pbx2 FAIL)"]
    assert as_text(found[:1]).splitlines() == ["ok   ami-login: in", "1 of 1 checks passed"]
    report = json.loads(as_json(found))
    assert report["ok"] is False and report["nodes"] == {"pbx1": True, "pbx2": False}
    assert [c["node"] for c in report["checks"]] == ["pbx1", "pbx2"]


def test_an_unreachable_node_fails_its_own_line_and_the_others_are_checked(tmp_path) -> None:
    settings = _two_nodes(tmp_path, _closed_port(), _closed_port())
    with _directory(tmp_path) as directory:
        found = asyncio.run(diagnose(settings, directory))
        with pytest.raises(UnknownNode, match="no PBX node is named 'pbx3'"):
            asyncio.run(diagnose(settings, directory, "pbx3"))
        only = asyncio.run(diagnose(settings, directory, "pbx2"))
    assert [(f.node, f.check, f.status) for f in found] == [
        ("pbx1", "ami-login", "fail"), ("pbx2", "ami-login", "fail")]
    assert "host/port of the [[pbx]] entry 'pbx2'" in found[1].hint
    assert [(f.node, f.check) for f in only] == [("pbx2", "ami-login")]


def test_node_must_name_a_configured_node(tmp_path, capsys, monkeypatch) -> None:
    config = tmp_path / "nodes.toml"
    config.write_text('[[pbx]]\nname = "pbx1"\n[[pbx]]\nname = "pbx2"\nport = 5039\n')
    for name in ("PBX_BRIDGE_CONFIG", "PBX_BRIDGE_AMI__PORT"):
        monkeypatch.delenv(name, raising=False)
    assert main(["doctor", "--config", str(config), "--node", "pbx9"]) == 2
    err = capsys.readouterr().err
    assert err == ("pbx-bridge doctor: --node: no PBX node is named 'pbx9' "
                   "(configured: pbx1, pbx2)\n")


def test_extensions_naming_no_configured_node_fail_directory_nodes(tmp_path) -> None:
    settings = _two_nodes(tmp_path, _closed_port(), _closed_port())
    extra = tmp_path / "extra.toml"
    extra.write_text('[[extensions]]\nnumber = "0003*299"\nowner = 12\n'
                     'device = "PJSIP/0003*299"\nnode = "pbx7"\n')
    with _directory(tmp_path) as directory:
        assert unplaced(settings, directory) is None  # every node named is configured
        directory.load_toml(extra)
        found = asyncio.run(diagnose(settings, directory))
        only = asyncio.run(diagnose(settings, directory, "pbx1"))
    lost = found[-1]
    assert (lost.node, lost.check, lost.status) == ("", "directory-nodes", "fail")
    assert lost.detail.endswith("(pbx7: 0003*299)")
    assert lost.hint.startswith("add a [[pbx]] entry named 'pbx7'")
    assert "directory-nodes" not in {f.check for f in only}  # --node: that node's lines
