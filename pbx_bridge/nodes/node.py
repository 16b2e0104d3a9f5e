"""One PBX node: its link and the features bound to it (they act on its channels).

The recordings catalog, events, webhooks and the stream are not here: they are the
service's, once (pbx_bridge/server.py), and hear every node's link.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pbx_bridge.config import PbxNodeSettings, Settings
from pbx_bridge.core.link import PbxLink, ami_client
from pbx_bridge.core.nodes import NodeIdentity, on_node, unknown_nodes
from pbx_bridge.dialing.service import DialingFeature
from pbx_bridge.directory.models import Extension
from pbx_bridge.directory.store import Directory
from pbx_bridge.holding.feature import HoldingFeature
from pbx_bridge.pbx.ami import AmiClient
from pbx_bridge.recording.feature import RecordingFeature
from pbx_bridge.storage.coordination import Coordination

__all__ = [
    "PbxNode", "build_link", "devices_of_node", "extensions_of_node", "node_features",
    "unknown_nodes",
    "warn_unknown",
]

log = logging.getLogger("pbx_bridge.serve")


@dataclass(frozen=True, eq=False)
class PbxNode:
    name: str
    link: PbxLink
    identity: NodeIdentity
    recording: RecordingFeature
    holding: HoldingFeature
    dialing: DialingFeature


def devices_of_node(
    extensions: Mapping[str, Extension], name: str, *, first: bool
) -> dict[str, str]:
    """device -> extension number of the extensions on this node (no node named: the
    first node's)."""
    return {dev: ext.number for dev, ext in extensions_of_node(extensions, name,
                                                                 first=first).items()}


def extensions_of_node(
    extensions: Mapping[str, Extension], name: str, *, first: bool
) -> dict[str, Extension]:
    """device -> extension, of the extensions on this node."""
    return {dev: ext for dev, ext in extensions.items() if on_node(ext.node, name, first=first)}


def build_link(
    node: PbxNodeSettings,
    devices: Callable[[], Mapping[str, str]],
    *,
    ami: AmiClient | None,
    clock: Callable[[], float],
) -> PbxLink:
    return PbxLink(ami or ami_client(node), devices, resync_interval=node.resync_interval,
                   clock=clock)


def node_features(
    name: str, link: PbxLink, directory: Directory, settings: Settings,
    clock: Callable[[], float], coordination: Coordination,
    extensions: Callable[[], Mapping[str, Extension]] | None = None,
) -> tuple[NodeIdentity, RecordingFeature]:
    """The features every node has first, in the order the link must call them.
    ``extensions``: the node's own (device -> extension), whose recording policy its
    AstDB gets."""
    return NodeIdentity(name, link), RecordingFeature(
        link, directory, settings, clock=clock, coordination=coordination,
        extensions=extensions,
    )


def warn_unknown(extensions: Mapping[str, Extension], names: set[str]) -> None:
    """`serve` says which directory extensions name a node it is not configured with:
    their requests answer 503 pbx_unavailable."""
    for node, numbers in sorted(unknown_nodes(extensions, names).items()):
        shown = ", ".join(sorted(numbers)[:5]) + (" ..." if len(numbers) > 5 else "")
        log.warning("%d extensions name the PBX node %r, which is not configured "
                    "(their requests answer 503): %s", len(numbers), node, shown)

