"""Two sandbox Asterisk nodes with a SIP trunk between them, for tests/cluster (issue 16).

Node 1 is the session's sandbox (tests/support/fixtures.py), node 2 a second instance in
the same root (`<name>-2`, its ports moved by NODE2_SHIFT more). Each is prepared as
devtools/sandbox.py does, then given what a real two-node setup needs:

- its own `systemname` in asterisk.conf `[options]` (Asterisk puts it in front of every
  Uniqueid and Linkedid, so call ids never meet across nodes);
- a PJSIP trunk to the other node: an endpoint named after the peer, with
  `from_user = <own name>`, so the peer identifies it by user name (everything runs on
  127.0.0.1, where identify-by-IP cannot tell the nodes apart), no auth, context
  `from-pstn` (a call from the other node is a call from outside: it rings the local
  extension, with U(pbx-bridge-rec) as every inbound call); P-Asserted-Identity carries
  the caller's number across, since the From user is the trunk's;
- dialplan: in `from-internal`, the other node's extensions go over the trunk
  (`Dial(PJSIP/<ext>@<peer>)`); an exact match wins over the local `_XXXX*XXX`.

Node 1's sandbox is restarted with this and given back fresh (prepare() again) after.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools.sandbox import Sandbox
from pbx_bridge.directory.store import Directory
from tests.reliability.support import ADMIN, OWNER
from tests.support.replicas import Replica

__all__ = [
    "NODE1", "NODE2", "NODE2_SHIFT", "ON_NODE2", "RTP_TIMEOUT", "AdminApi", "Cluster",
    "admin_token", "cluster_directory", "configure_node", "node2_sandbox", "nodes_environ",
    "nodes_toml", "start_pair",
]

NODE1, NODE2 = "pbx1", "pbx2"  # the bridge's [[pbx]] names, and each Asterisk's systemname
# Node 2's ports: node 1's offset plus this. It must avoid the suite's other sandboxes
# (base+50 containers, +500 modules, +600 doctor) and the fallbacks 1000-4000 that the
# session sandbox takes when the default ports are busy.
NODE2_SHIFT = 700
_OTHER_SHIFTS = (0, 50, 500, 600)
# Seconds without RTP after which a trunk call's half ends (the peer node died).
RTP_TIMEOUT = 4
_FALLBACKS = (1000, 2000, 3000, 4000)
# The demo extensions whose phones register on node 2 (directory `node = "pbx2"`).
ON_NODE2 = ("0003*211", "0003*212")
ON_NODE1 = ("0003*210", "0003*213", "0004*210")


def node2_sandbox(node1: Sandbox) -> Sandbox:
    offset = node1.port_offset + NODE2_SHIFT
    taken = {node1.port_offset + s for s in _OTHER_SHIFTS} | set(_FALLBACKS)
    if offset in taken:
        raise AssertionError(f"node 2's port offset {offset} is another sandbox's")
    return Sandbox(name=f"{node1.name}-2", root=node1.root, port_offset=offset)


def _trunk(peer: str, own: str, peer_sip_port: int) -> str:
    return f"""
; ---- written by tests/support/cluster.py: the trunk to node {peer}
[{peer}]
type = endpoint
context = from-pstn
disallow = all
allow = ulaw,alaw,gsm
direct_media = no
media_address = 127.0.0.1
bind_rtp_to_media_address = yes
rtp_symmetric = yes
dtmf_mode = rfc4733
aors = {peer}
; the peer identifies this node by the From user (endpoint_identifier_order username)
from_user = {own}
; the caller's own number crosses in P-Asserted-Identity, trusted both ways
send_pai = yes
trust_id_outbound = yes
trust_id_inbound = yes
; a node that dies sends no BYE: its calls' other halves here end when no RTP came
; for this long (every call through the trunk carries media: direct_media = no)
rtp_timeout = {RTP_TIMEOUT}

[{peer}]
type = aor
contact = sip:127.0.0.1:{peer_sip_port}
"""


def _routes(peer: str, remote: Iterable[str]) -> str:
    lines = [f"\n; ---- written by tests/support/cluster.py: extensions on node {peer}",
             "[from-internal]"]
    for ext in remote:
        lines += [
            f"exten => {ext},1,NoOp(cluster: {ext} is on {peer})",
            " same => n,Set(__DYNAMIC_FEATURES=pbxrec)",
            f" same => n,Dial(PJSIP/${{EXTEN}}@{peer},60,tT)",
            " same => n,Hangup()",
        ]
    return "\n".join(lines) + "\n"


def configure_node(sb: Sandbox, own: str, peer: str, peer_sip_port: int,
                   remote: Iterable[str]) -> None:
    """A fresh instance folder (Sandbox.prepare) plus systemname, trunk and routes."""
    sb.prepare()
    etc = sb.instance_dir / "etc"
    conf = etc / "asterisk.conf"
    text = conf.read_text()
    if "[options]" not in text:
        raise AssertionError("no [options] in the sandbox's asterisk.conf")
    conf.write_text(text.replace("[options]", f"[options]\nsystemname = {own}", 1))
    for name, extra in (("pjsip.conf", _trunk(peer, own, peer_sip_port)),
                        ("extensions.conf", _routes(peer, remote))):
        with open(etc / name, "a") as out:
            out.write(extra)


def start_pair(node1: Sandbox, node2: Sandbox) -> None:
    """Both nodes (stopped) configured for each other and started."""
    configure_node(node1, NODE1, NODE2, node2.sip_port, ON_NODE2)
    configure_node(node2, NODE2, NODE1, node1.sip_port, ON_NODE1)
    node1.start(timeout=90, fresh=False)
    node2.start(timeout=90, fresh=False)


def cluster_directory(base: Path, out: Path) -> Path:
    """The demo directory with `node = "pbx2"` on the ON_NODE2 extensions."""
    lines = []
    for line in base.read_text().splitlines():
        lines.append(line)
        for ext in ON_NODE2:
            if line.strip() == f'number = "{ext}"':
                lines.append(f'node = "{NODE2}"')
    out.write_text("\n".join(lines) + "\n")
    return out


def nodes_toml(node1: Sandbox, node2: Sandbox, out: Path) -> Path:
    """The bridge's settings file: one [[pbx]] per node, with where this host reads the
    node's recordings (its monitor folder in the shared root); their secrets are in
    nodes_environ, as an operator keeps them out of the file."""
    out.write_text("".join(
        f'[[pbx]]\nname = "{name}"\nport = {node.ami_port}\n'
        f'[pbx.recordings]\nmonitor_dir = "{node.monitor_dir}"\nhost_root = "{node.root}"\n\n'
        for name, node in ((NODE1, node1), (NODE2, node2))
    ))
    return out


def nodes_environ(node1: Sandbox, node2: Sandbox, config: Path) -> dict[str, str]:
    return {
        "PBX_BRIDGE_CONFIG": str(config),
        f"PBX_BRIDGE_PBX_SECRETS__{NODE1.upper()}": node1.secrets.ami,
        f"PBX_BRIDGE_PBX_SECRETS__{NODE2.upper()}": node2.secrets.ami,
    }


@dataclass
class Cluster:
    node1: Sandbox
    node2: Sandbox

    def sandbox_of(self, ext: str) -> Sandbox:
        return self.node2 if ext in ON_NODE2 else self.node1

    @property
    def nodes(self) -> dict[str, Sandbox]:
        return {NODE1: self.node1, NODE2: self.node2}



def admin_token(database_url: str) -> str:
    """A token of the admin's (every organization's extensions) in the shared database."""
    directory = Directory.open(database_url)
    try:
        client_id, _ = directory.create_app(ADMIN, "cluster")
        return directory.issue_token(client_id)[0]
    finally:
        directory.close()


@dataclass
class AdminApi:
    """PhoneCalls of any demo extension through one replica, as the admin
    (/uapi/phoneCalls/<owner>/<extension>)."""

    replica: Replica
    token: str

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.replica.http.request(
            method, self.replica.base + path, json=body,
            headers={"Authorization": f"Bearer {self.token}"},
        ) as r:
            raw = await r.read()
            return r.status, (await r.json() if raw else None)

    async def list(self, ext: str) -> tuple[int, Any]:
        return await self.request("GET", f"/uapi/phoneCalls/{OWNER[ext]}/{ext}?count=4999")

    async def calls(self, ext: str) -> list[dict[str, Any]]:
        status, body = await self.list(ext)
        assert status in (200, 204), (self.replica.name, ext, status, body)
        return body["entry"] if status == 200 else []

    async def get(self, ext: str, cid: str) -> tuple[int, Any]:
        return await self.request("GET", f"/uapi/phoneCalls/{OWNER[ext]}/{ext}/{cid}")

    async def put(self, ext: str, cid: str, body: dict[str, Any]) -> tuple[int, Any]:
        return await self.request("PUT", f"/uapi/phoneCalls/{OWNER[ext]}/{ext}/{cid}", body)
