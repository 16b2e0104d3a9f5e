"""Typed keys under which the app factory stores what the handlers need."""

from __future__ import annotations

from aiohttp import web

from pbx_bridge.config import Settings
from pbx_bridge.core.link import PbxLink
from pbx_bridge.core.nodes import Nodes
from pbx_bridge.dialing.service import DialingFeature
from pbx_bridge.directory.store import Directory
from pbx_bridge.holding.feature import HoldingFeature
from pbx_bridge.nodes.node import PbxNode
from pbx_bridge.recording.feature import RecordingFeature
from pbx_bridge.recordings.feature import RecordingsCatalog
from pbx_bridge.stream.hub import StreamHub
from pbx_bridge.webhooks.service import Webhooks

__all__ = [
    "DIALING", "DIRECTORY", "HOLDING", "LINK", "NODES", "RECORDING", "RECORDINGS", "SETTINGS",
    "STREAM", "WEBHOOKS",
]

SETTINGS = web.AppKey("settings", Settings)
DIRECTORY = web.AppKey("directory", Directory)
LINK = web.AppKey("pbx_link", PbxLink)
RECORDING = web.AppKey("recording", RecordingFeature)
RECORDINGS = web.AppKey("recordings", RecordingsCatalog)
WEBHOOKS = web.AppKey("webhooks", Webhooks)
STREAM = web.AppKey("stream", StreamHub)
HOLDING = web.AppKey("holding", HoldingFeature)
DIALING = web.AppKey("dialing", DialingFeature)
# The PBX nodes (core/nodes.py): which node a request goes to. LINK, RECORDING, HOLDING
# and DIALING are the first node's.
NODES: web.AppKey[Nodes[PbxNode]] = web.AppKey("nodes")
