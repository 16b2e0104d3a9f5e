"""Several PBX nodes (issue 16): the config, the per-node device maps and the request
routing, through the real app and Services, with each node's tracker fed AMI-shaped
events (tests/unit/api_support.py's FakePbx). The real two-Asterisk tier is tests/cluster/."""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from pbx_bridge.api.app import create_app
from pbx_bridge.config import PbxNodeSettings, Settings, load_settings
from pbx_bridge.dialing.rules import parse_query, parse_request
from pbx_bridge.directory.models import DirectoryFile
from pbx_bridge.nodes.node import PbxNode
from pbx_bridge.secret_check import refused_secret
from pbx_bridge.server import Services
from tests.unit.api_support import (
    EPOCH,
    Apps,
    Chan,
    FakePbx,
    closed_port,
    error_of,
    force_connected,
    make_directory,
    make_settings,
)

JOHN = "/uapi/phoneCalls/@me/0003*210"  # node pbx1 (no node named: the first)
JANE = "/uapi/phoneCalls/@me/0003*212"  # node pbx2


# --------------------------------------------------------------------------- config


def test_without_pbx_entries_ami_is_the_one_node() -> None:
    s = Settings(ami={"host": "10.0.0.1", "port": 5039, "secret": "x1"})
    (node,) = s.nodes()
    assert (node.name, node.host, node.port, node.secret.get_secret_value()) == (
        "pbx", "10.0.0.1", 5039, "x1")


def test_pbx_entries_take_ami_defaults_and_env_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[ami]\nping_interval = 2.0\nsecret = "shared"\n'
                    '[[pbx]]\nname = "pbx1"\nport = 5038\n'
                    '[[pbx]]\nname = "pbx2"\nhost = "10.0.0.12"\nsecret = "in-file"\n')
    monkeypatch.setenv("PBX_BRIDGE_PBX_SECRETS__PBX2", "from-env")
    one, two = load_settings(path).nodes()
    assert (one.name, one.port, one.ping_interval, one.secret.get_secret_value()) == (
        "pbx1", 5038, 2.0, "shared")
    assert (two.name, two.host, two.ping_interval, two.secret.get_secret_value()) == (
        "pbx2", "10.0.0.12", 2.0, "from-env")
    assert "from-env" not in repr(load_settings(path))  # never printed


@pytest.mark.parametrize(("toml", "message"), [
    ('[[pbx]]\nname = "a"\n[[pbx]]\nname = "a"\n', "given twice"),
    ('[[pbx]]\nname = "Bad Name"\n', "pbx[0].name"),
    ('[[pbx]]\nname = "a"\nbogus = 1\n', "unknown key"),
    ('[[pbx]]\nname = "a"\n[pbx_secrets]\nb = "x"\n', "no [[pbx]] node is named 'b'"),
])
def test_bad_pbx_entries_are_refused(tmp_path: Path, toml: str, message: str) -> None:
    from pbx_bridge.config import ConfigError

    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_settings(path)


def test_serve_refuses_a_node_without_a_secret() -> None:
    s = Settings(ami={"secret": "good-secret-1"},
                 pbx=[{"name": "pbx1"}, {"name": "pbx2", "secret": ""}])
    refused = refused_secret(s)
    assert refused is not None and "pbx node 'pbx2'" in refused
    assert "PBX_BRIDGE_PBX_SECRETS__PBX2" in refused


# --------------------------------------------------------------------------- routing


class NodePbx(FakePbx):
    """FakePbx for one node: Uniqueids carry the node's systemname, as Asterisk's do
    (``<systemname>-<epoch>.<seq>``), so the two nodes' call ids never meet."""

    def __init__(self, tracker: Any, system_name: str) -> None:
        super().__init__(types.SimpleNamespace(tracker=tracker))  # type: ignore[arg-type]
        self.system_name = system_name

    def channel(self, device: str, *, linkedid: str | None = None, state: int = 4,
                num: str = "", name: str = "", exten: str = "") -> Chan:
        self.seq += 1
        uid = f"{self.system_name}-{EPOCH}.{self.seq}"
        ch = Chan(f"{device}-{self.seq:08x}", uid, linkedid or uid, state, num, name, exten)
        self.feed(self._snapshot(ch, "Newchannel"))
        return ch


class TwoNodes:
    def __init__(self, services: Services, client: Any, apps: Apps) -> None:
        self.services, self.client, self.apps = services, client, apps
        self.one, self.two = services.nodes.all
        self.pbx1 = NodePbx(self.one.link.tracker, "pbx1")
        self.pbx2 = NodePbx(self.two.link.tracker, "pbx2")

    def set_ready(self, node: PbxNode, ready: bool, system_name: str | None) -> None:
        node.link.ready = ready
        node.identity.system_name = system_name

    async def get(self, path: str, who: str = "john") -> Any:
        return await self.client.get(path, headers=self.apps.auth(who))


@pytest.fixture
async def nodes(aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TwoNodes:
    base = make_settings(tmp_path)
    entries = [PbxNodeSettings(**{**dict(base.ami), "name": name, "port": closed_port()})
               for name in ("pbx1", "pbx2")]
    settings = base.model_copy(update={"pbx": entries})
    directory = make_directory(settings)
    jane = [e.model_copy(update={"node": "pbx2"}) for e in directory.extensions_of_user(13)]
    directory.load(DirectoryFile(extensions=jane))
    services = Services(settings, directory)
    app = create_app(settings, directory, services)
    client = await aiohttp_client(TestServer(app))
    force_connected(monkeypatch, services.ami, True)  # every AmiClient: read paths only
    two = TwoNodes(services, client, Apps.create(directory))
    two.set_ready(two.one, True, "pbx1")
    two.set_ready(two.two, True, "pbx2")
    return two


def test_each_node_tracks_its_own_extensions(nodes: TwoNodes) -> None:
    assert nodes.one.link.tracker.is_local("0003*210")
    assert not nodes.one.link.tracker.is_local("0003*212")
    assert nodes.two.link.tracker.is_local("0003*212")
    assert not nodes.two.link.tracker.is_local("0003*210")


async def test_a_call_across_nodes_shows_each_extensions_own_view(nodes: TwoNodes) -> None:
    # John (pbx1) calls Jane (pbx2) over the trunk: two Asterisk calls, one per node.
    out = nodes.pbx1.call("PJSIP/0003*210", "PJSIP/node2", caller_num="0003*210")
    inn = nodes.pbx2.call("PJSIP/node1", "PJSIP/0003*212", caller_num="0003*210")
    john = await (await nodes.get(JOHN)).json()
    jane = await (await nodes.get(JANE, who="jane")).json()
    assert [e["id"] for e in john["entry"]] == [out.id]
    assert [e["id"] for e in jane["entry"]] == [inn.id]
    (john_view,) = john["entry"][0]["phoneCallView"]
    (jane_view,) = jane["entry"][0]["phoneCallView"]
    assert john_view["flow"] == "4" and jane_view["flow"] == "8"  # out / in
    one = await nodes.get(f"{JANE}/{inn.id}", who="jane")
    assert one.status == 200 and (await one.json())["id"] == inn.id
    # a call id of the other node is unknown to this extension
    assert await error_of(await nodes.get(f"{JANE}/{out.id}", who="jane")) == (
        400, "pc_phonecall_invalid")


async def test_a_node_down_makes_only_its_own_extensions_503(nodes: TwoNodes) -> None:
    out = nodes.pbx1.call("PJSIP/0003*210", "PJSIP/pstn")
    inn = nodes.pbx2.call("PJSIP/0003*212", "PJSIP/pstn")
    nodes.set_ready(nodes.two, False, "pbx2")
    assert await error_of(await nodes.get(JANE, who="jane")) == (503, "pbx_unavailable")
    assert await error_of(await nodes.get(f"{JANE}/{inn.id}", who="jane")) == (
        503, "pbx_unavailable")
    john = await nodes.get(f"{JOHN}/{out.id}")
    assert john.status == 200
    assert (await nodes.client.get("/readyz")).status == 200  # one node is enough
    assert (await nodes.client.get("/readyz/pbx1")).status == 200
    assert await error_of(await nodes.client.get("/readyz/pbx2")) == (503, "pbx_unavailable")
    assert await error_of(await nodes.client.get("/readyz/pbx9")) == (404, "not_found")
    nodes.set_ready(nodes.one, False, "pbx1")
    assert (await nodes.client.get("/readyz")).status == 503


@pytest.mark.parametrize(("one", "two", "unready"), [
    ("pbx1", "", "pbx2"),  # no systemname: ids could clash
    ("same", "same", "both"),
    ("pbx1", None, "pbx2"),  # CoreSettings not answered
])
async def test_a_node_without_a_systemname_of_its_own_is_not_ready(
    nodes: TwoNodes, one: str, two: str | None, unready: str
) -> None:
    nodes.set_ready(nodes.one, True, one)
    nodes.set_ready(nodes.two, True, two)
    status = {n: (await nodes.client.get(f"/readyz/{n}")).status for n in ("pbx1", "pbx2")}
    assert status == {"pbx1": 503 if unready == "both" else 200, "pbx2": 503}
    body = await (await nodes.client.get("/readyz/pbx2")).json()
    assert "systemname" in body["error"]["message"]


async def test_actions_go_to_the_node_that_holds_the_call(nodes: TwoNodes) -> None:
    asked: dict[str, list[str]] = {"pbx1": [], "pbx2": []}
    for n in nodes.services.nodes.all:
        n.link.ami.send_action = _spy(n.link.ami.send_action, asked[n.name])  # type: ignore[method-assign]
        n.link.ami.send_list_action = _spy(n.link.ami.send_list_action, asked[n.name])  # type: ignore[method-assign]
    inn = nodes.pbx2.call("PJSIP/0003*212", "PJSIP/pstn")
    resp = await nodes.client.put(
        f"{JANE}/{inn.id}", json={"action": "OnHold", "phoneCallViewId": "01"},
        headers=nodes.apps.auth("jane"))
    assert resp.status in (503, 504)  # nobody answers: the real client refuses
    assert asked["pbx1"] == []
    assert asked["pbx2"] == ["Status"]  # its AMI was asked (the bridge peer), node 1's never


def _spy(real: Any, names: list[str]) -> Any:
    """Note the action's name, then let the real (unconnected) client refuse it."""

    async def send(name: str, *args: Any, **kw: Any) -> Any:
        names.append(name)
        return await real(name, *args, **kw)

    return send


async def test_an_extension_on_an_unknown_node_answers_503(
    nodes: TwoNodes, caplog: pytest.LogCaptureFixture
) -> None:
    ext = nodes.services.directory.extension("0003*213")
    assert ext is not None
    nodes.services.directory.load(DirectoryFile(extensions=[
        ext.model_copy(update={"node": "pbx9"})]))
    with caplog.at_level("WARNING"):
        nodes.services.reload_directory()
    assert "pbx9" in caplog.text and "0003*213" in caplog.text
    resp = await nodes.get("/uapi/phoneCalls/@me/0003*213", who="jane")
    assert await error_of(resp) == (503, "pbx_unavailable")
    assert (await nodes.get(JANE, who="jane")).status == 204  # the others still answer


@pytest.mark.parametrize(("system_name", "prefix"), [
    ("pbx2", "pbx2-"),  # the node's own: placed calls' ids carry it like Asterisk's own
    (None, "pbxb-"),  # not read (yet): the bridge's
    ("", "pbxb-"),  # one node without a systemname
    ("bad\r\nAction: Hangup", "pbxb-"),  # never anything but a plain name to AMI
])
def test_a_placed_call_is_numbered_like_its_nodes_own_calls(
    nodes: TwoNodes, system_name: str | None, prefix: str
) -> None:
    """Click-to-call picks the first leg's Uniqueid (Originate ChannelId), so the call's
    Linkedid and id. Failed before: always "pbxb-<epoch>.<n>", with no node in it, where
    every id Asterisk numbers itself starts with the node's systemname (cluster tier)."""
    nodes.two.identity.system_name = system_name
    jane = nodes.services.directory.extension("0003*212")
    assert jane is not None
    request = parse_request(b'{"extension": "0003*212", '
                            b'"phoneCallView": [{"destination": ["0003*213"]}]}')
    plan = nodes.two.dialing.plan("simple", request, parse_query({}), jane)
    assert plan.channel_id.startswith(prefix), plan.channel_id
    assert re.fullmatch(r"[A-Za-z0-9_-]+-\d+\.\d+", plan.channel_id)
    assert plan.headers()["ChannelId"] == plan.channel_id
