"""Counting the requests in flight for core/quiet.py (background writes yield to them).

A request is in flight from the outermost middleware until its handler returns, or
until its response is prepared if that comes first: a streamed answer (the event stream,
a media download) has sent its headers and may last hours, and must not hold the
background writers back (they would wait their whole delay every time)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from pbx_bridge.core.quiet import Quiet

__all__ = ["quiet_middleware", "quiet_on_prepare"]

_IN_FLIGHT: web.RequestKey[bool] = web.RequestKey("in_flight")


def _leave(request: web.Request, quiet: Quiet) -> None:
    if request.get(_IN_FLIGHT):
        request[_IN_FLIGHT] = False
        quiet.leave()


def quiet_middleware(quiet: Quiet) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        quiet.enter()
        request[_IN_FLIGHT] = True
        try:
            return await handler(request)
        finally:
            _leave(request, quiet)

    return middleware


def quiet_on_prepare(
    quiet: Quiet,
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        _leave(request, quiet)

    return on_prepare
