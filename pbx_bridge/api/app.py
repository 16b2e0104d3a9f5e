"""The aiohttp application: ``create_app(settings, directory, services)``.

``services`` (built by the composition root, pbx_bridge/server.py) brings the PBX link
and the recording feature the handlers use; the app owns their lifetime (a cleanup
context: ``services.start()`` on startup, ``services.close()`` on shutdown) unless told
otherwise.

Logging: :class:`AccessLogger` logs the path without its query string (a token may be
in ``accessRequestToken``) and still percent-encoded (no CR/LF can reach the log).
:class:`NoRawRequestInLogs` keeps the raw bytes of a request aiohttp's HTTP parser
refuses (which may hold a token too) out of aiohttp's own error log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Protocol

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

from pbx_bridge.api.context import (
    DIALING,
    DIRECTORY,
    HOLDING,
    LINK,
    NODES,
    RECORDING,
    RECORDINGS,
    SETTINGS,
    STREAM,
    WEBHOOKS,
)
from pbx_bridge.api.dialing import add_dialing_routes
from pbx_bridge.api.errors import error_middleware, error_response
from pbx_bridge.api.metrics import REGISTRY, Metrics, metrics_handler
from pbx_bridge.api.nodes import node_readyz
from pbx_bridge.api.oauth import add_oauth_routes
from pbx_bridge.api.openapi import OPENAPI, build_document, openapi_handler
from pbx_bridge.api.quiet import quiet_middleware, quiet_on_prepare
from pbx_bridge.api.recordings import add_recording_routes
from pbx_bridge.api.request_id import REQUEST_ID, request_id_header, request_id_middleware
from pbx_bridge.api.routes import BACKGROUND, add_routes
from pbx_bridge.api.routing import finish_routes
from pbx_bridge.api.stream import add_stream_routes
from pbx_bridge.api.webhooks import add_webhook_routes
from pbx_bridge.config import Settings
from pbx_bridge.core.link import PbxLink
from pbx_bridge.core.nodes import Nodes
from pbx_bridge.core.quiet import Quiet
from pbx_bridge.dialing.service import DialingFeature
from pbx_bridge.directory.store import Directory
from pbx_bridge.holding.feature import HoldingFeature
from pbx_bridge.nodes.node import PbxNode
from pbx_bridge.recording.feature import RecordingFeature
from pbx_bridge.recordings.feature import RecordingsCatalog
from pbx_bridge.stream.hub import StreamHub
from pbx_bridge.ui.routes import add_ui_routes
from pbx_bridge.webhooks.service import Webhooks

__all__ = ["AccessLogger", "NoRawRequestInLogs", "Runtime", "create_app"]


class Runtime(Protocol):
    """What the app serves: pbx_bridge.server.Services."""

    link: PbxLink
    nodes: Nodes[PbxNode]
    recording: RecordingFeature
    recordings: RecordingsCatalog
    webhooks: Webhooks
    stream: StreamHub
    holding: HoldingFeature
    dialing: DialingFeature
    quiet: Quiet  # requests in flight: background writes wait for none (issue 15)

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class AccessLogger(AbstractAccessLogger):
    """``<remote> "<METHOD> <path>" <status> <bytes> <seconds>`` — never a query string;
    the request's id as the record's ``request_id``."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %d %d %.3f',
            request.remote or "-",
            request.method,
            request.rel_url.raw_path,
            response.status,
            response.body_length,
            time,
            extra={"request_id": request.get(REQUEST_ID)},
        )


class NoRawRequestInLogs(logging.Filter):
    """aiohttp logs a request its HTTP parser refuses (a space or a non-ASCII byte in the
    URL, a control character in a header, a line over 8 KiB) with the offending raw line,
    which may hold a bearer token (``?accessRequestToken=...``, ``Authorization: Bearer
    ...``). Keep the fact and the kind of error; drop the bytes and the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg = (
                f"{record.getMessage()}: unparseable HTTP request "
                f"({type(exc).__name__}, {exc.code})"
            )
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


_SERVER_LOG = logging.getLogger("aiohttp.server")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready: the one node is; with several nodes, at least one is (each node's own
    readiness: /readyz/{node}). ``degraded``: a ready node's link runs with fewer AMI
    action sessions than configured."""
    nodes = request.app[NODES]
    if nodes.any_ready():
        degraded = "; ".join(f"{n.name}: {why}" if not nodes.single else why
                             for n in nodes.all if (why := n.link.degraded()))
        return web.json_response({"status": "ok", **({"degraded": degraded} if degraded else {})})
    return error_response(503, "pbx_unavailable", "the PBX is not connected or not resynced")


_RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime")  # whose lifetime the app owns


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    runtime = app[_RUNTIME]
    await runtime.start()
    try:
        yield
    finally:
        await runtime.close()
        background = app[BACKGROUND]
        pending = list(background)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if request.path.startswith("/uapi/phoneCall"):
        response.headers.setdefault("Cache-Control", "no-store")


def create_app(
    settings: Settings,
    directory: Directory,
    services: Runtime,
    *,
    manage_bridge: bool = True,
) -> web.Application:
    """The app. ``manage_bridge=False`` leaves starting/closing ``services`` to the caller."""
    if not any(isinstance(f, NoRawRequestInLogs) for f in _SERVER_LOG.filters):
        _SERVER_LOG.addFilter(NoRawRequestInLogs())
    metrics = Metrics(services.link, services.recording, services.recordings,
                      services.webhooks.sender, services.stream, nodes=services.nodes)
    app = web.Application(
        middlewares=[quiet_middleware(services.quiet), request_id_middleware,
                     metrics.middleware, error_middleware],
        client_max_size=settings.http.body_limit,
    )
    app[SETTINGS] = settings
    app[DIRECTORY] = directory
    app[LINK] = services.link
    app[NODES] = services.nodes
    app[RECORDING] = services.recording
    app[RECORDINGS] = services.recordings
    app[WEBHOOKS] = services.webhooks
    app[STREAM] = services.stream
    app[HOLDING] = services.holding
    app[DIALING] = services.dialing
    app[REGISTRY] = metrics
    app[OPENAPI] = build_document(settings.http.public_base_url)

    add_routes(app)
    add_dialing_routes(app)
    add_recording_routes(app)
    add_webhook_routes(app)
    add_stream_routes(app)
    app.router.add_get("/uapi/openapi.json", openapi_handler, allow_head=False)
    app.router.add_get("/healthz", healthz, allow_head=False)
    app.router.add_get("/readyz", readyz, allow_head=False)
    app.router.add_get("/readyz/{node}", node_readyz, allow_head=False)
    app.router.add_get("/metrics", metrics_handler, allow_head=False)
    add_oauth_routes(app)
    add_ui_routes(app)
    finish_routes(app)  # after every route: trailing-slash twins, Expect after auth
    app.on_response_prepare.append(_security_headers)
    app.on_response_prepare.append(request_id_header)
    app.on_response_prepare.append(quiet_on_prepare(services.quiet))
    if manage_bridge:
        app[_RUNTIME] = services
        app.cleanup_ctx.append(_lifetime)
    return app
