"""Several PBX nodes behind one API (issue 16): which node a request goes to.

One `PbxLink` per node (its own AMI link, tracker, readiness and resync); `Nodes` holds
them in configuration order, the first being the node of every extension whose
directory entry names none. The rules:

- an extension's calls are on its own node (each node's tracker knows the devices of its
  own extensions only), so a list asks the home nodes of the path's extensions, and each
  of them must be ready (a list is never silently partial);
- a call id is looked up in every node's tracker (a dict look-up each); an action goes to
  the node whose tracker holds the call;
- a node that is down answers 503 for its own extensions and calls only.

With more than one node, a node is ready only when its Asterisk has a SystemName of its
own (asterisk.conf ``systemname``): Asterisk puts it in front of every Uniqueid and
Linkedid, which is what keeps call ids (SHA-1 of the Linkedid) unique across nodes.
`NodeIdentity` reads it (CoreSettings) on every (re)connect. One node: nothing of this is
asked, and `Nodes` costs a request nothing but an attribute read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Generic, Protocol, TypeVar

from pbx_bridge.calls.tracker import Call
from pbx_bridge.core.feature import Feature
from pbx_bridge.core.link import PbxLink
from pbx_bridge.errors import PbxUnavailable
from pbx_bridge.pbx.ami import AmiError, is_success

__all__ = ["NodeIdentity", "Nodes", "PbxNodeLike", "on_node", "systemname_problem",
           "unknown_nodes"]

log = logging.getLogger("pbx_bridge.core")


def on_node(named: str | None, node: str, *, first: bool) -> bool:
    """Whether something that names the PBX node ``named`` (an extension, a recording
    row, an event; None: none named) is ``node``'s: none named is the first node's."""
    return named == node or (first and named is None)


def unknown_nodes(extensions: Mapping[str, HasNode], names: set[str]) -> dict[str, list[str]]:
    """node name -> the extension numbers that name a node the configuration lacks
    (`serve` warns of them, `pbx-bridge doctor` fails them)."""
    out: dict[str, list[str]] = {}
    for ext in extensions.values():
        if ext.node is not None and ext.node not in names:
            out.setdefault(ext.node, []).append(ext.number)
    return out


def systemname_problem(
    own: str | None, others: Iterable[tuple[str, str | None]]
) -> str | None:
    """Why one of several nodes' Asterisk SystemName (``own``; None or "": it has none)
    cannot keep its call ids apart from the ``others`` (node name, their SystemName), or
    None when it can. `Nodes` and `pbx-bridge doctor` both ask this."""
    if not own:
        return "its Asterisk has no systemname (asterisk.conf): call ids could clash"
    for name, theirs in others:
        if theirs == own:
            return f"its Asterisk systemname {own!r} is also node {name!r}'s"
    return None


class NodeIdentity(Feature):
    """The node's Asterisk SystemName, read with CoreSettings on every (re)connect
    (before the link says it is ready). None: not read (yet)."""

    def __init__(self, name: str, link: PbxLink) -> None:
        self.name = name
        self.link = link
        self.system_name: str | None = None
        link.add_feature(self)

    async def on_connected(self) -> None:
        try:
            resp = await self.link.ami.send_action("CoreSettings")
        except AmiError as exc:
            log.warning("PBX node %s: CoreSettings failed: %s", self.name, exc)
            self.system_name = None
            return
        self.system_name = resp.get("SystemName", "").strip() if is_success(resp) else None


class PbxNodeLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def link(self) -> PbxLink: ...

    @property
    def identity(self) -> NodeIdentity: ...


class HasNode(Protocol):
    """An extension as the routing needs it (directory.models.Extension)."""

    @property
    def number(self) -> str: ...

    @property
    def node(self) -> str | None: ...


N = TypeVar("N", bound=PbxNodeLike)


class Nodes(Generic[N]):
    def __init__(self, nodes: Sequence[N]) -> None:
        if not nodes:
            raise ValueError("at least one PBX node")
        self.all: tuple[N, ...] = tuple(nodes)
        self.first: N = nodes[0]
        self.single = len(nodes) == 1
        self._by_name = {node.name: node for node in nodes}
        self._complained: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.all)

    def get(self, name: str) -> N | None:
        return self._by_name.get(name)

    # ------------------------------------------------------------------ readiness
    def not_ready_because(self, node: N) -> str | None:
        """Why the node is not ready, or None when it is."""
        if not node.link.is_ready():
            return "the PBX is not connected or not resynced"
        if self.single:
            return None
        return systemname_problem(node.identity.system_name, (
            (other.name, other.identity.system_name) for other in self.all if other is not node
        ))

    def is_ready(self, node: N) -> bool:
        return self.not_ready_because(node) is None

    def any_ready(self) -> bool:
        return any(self.is_ready(node) for node in self.all)

    def require_ready(self, node: N) -> None:
        why = self.not_ready_because(node)
        if why is None:
            return
        if self.single:
            raise PbxUnavailable("the PBX is not connected")
        if self._complained.get(node.name) != why:  # once per reason, not per request
            self._complained[node.name] = why
            log.warning("PBX node %s is not ready: %s", node.name, why)
        raise PbxUnavailable(f"the PBX node {node.name!r} is not ready")

    # ------------------------------------------------------------------ routing
    def home(self, node_name: str | None) -> N:
        """The node an extension's device lives on (None: the first). A name the
        configuration does not know is 503: those extensions have no PBX here."""
        if node_name is None or (self.single and node_name == self.first.name):
            return self.first
        node = self._by_name.get(node_name)
        if node is None:
            raise PbxUnavailable(f"the PBX node {node_name!r} is not configured")
        return node

    def homes(self, extensions: Iterable[HasNode]) -> list[N]:
        seen: dict[str, N] = {}
        for ext in extensions:
            node = self.home(ext.node)
            seen.setdefault(node.name, node)
        return list(seen.values())

    def calls_for(self, extensions: Sequence[HasNode]) -> list[Call]:
        """The live calls of these extensions on their home nodes (each must be ready),
        oldest first."""
        numbers = [e.number for e in extensions]
        if self.single:
            self.require_ready(self.first)
            return self.first.link.calls_for(numbers)
        homes = self.homes(extensions)
        for node in homes:
            self.require_ready(node)
        if len(homes) == 1:
            return homes[0].link.calls_for(numbers)
        calls = [call for node in homes for call in node.link.calls_for(numbers)]
        return sorted(calls, key=lambda c: (c.published, c.linkedid))

    def find_call(self, call_id: str, extensions: Sequence[HasNode]) -> tuple[N, Call | None]:
        """The node whose tracker holds this call, and the call; when no node has it,
        the first home node of ``extensions`` and None. 503 when that node is not ready."""
        if self.single:
            self.require_ready(self.first)
            return self.first, self.first.link.call(call_id)
        for node in self.all:
            call = node.link.call(call_id)
            if call is not None:
                self.require_ready(node)
                return node, call
        homes = self.homes(extensions)
        for node in homes:
            self.require_ready(node)
        return homes[0], None

    def link_of(self, call: Call) -> PbxLink:
        """The link whose tracker holds this live call object (render needs its tracker)."""
        if self.single:
            return self.first.link
        for node in self.all:
            if node.link.tracker.calls.get(call.linkedid) is call:
                return node.link
        return self.first.link
