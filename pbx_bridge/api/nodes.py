"""``GET /readyz/{node}``: one PBX node's readiness (issue 16), what `pbx-bridge nodes`
reads. Unauthenticated like /readyz, so it says no more than ready or why not."""

from __future__ import annotations

from aiohttp import web

from pbx_bridge.api.context import NODES
from pbx_bridge.api.errors import error_response

__all__ = ["node_readyz"]


async def node_readyz(request: web.Request) -> web.Response:
    nodes = request.app[NODES]
    name = request.match_info["node"]
    node = nodes.get(name)
    if node is None:
        return error_response(404, "not_found", "no such PBX node")
    why = nodes.not_ready_because(node)
    if why is None:
        return web.json_response({"status": "ok", "node": node.name})
    return error_response(503, "pbx_unavailable", f"PBX node {node.name!r}: {why}")
