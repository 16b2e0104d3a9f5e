"""What every route of the app gets once all are registered (``finish_routes``, the last
step of ``create_app``):

- **its twin with a trailing slash.** VoipNow's own clients send
  ``/uapi/phoneCalls/@me/0003*210/`` and ``.../<id>/`` (GET and PUT) and follow no
  redirect (a PUT cannot be redirected safely anyway), so every path is served as is and
  with one trailing ``/``: same methods, handlers and Expect handling. Generic, so routes
  other modules add in ``create_app`` (the OAuth ones, say) get a twin too.
- **``Expect: 100-continue`` only after authentication** on the bearer-protected routes:
  aiohttp answers 100 as soon as the headers arrive, inviting anyone to send a body;
  here a request whose token does not authenticate gets its 401 instead, and the
  connection is closed (the body it did not send is not waited for).
"""

from __future__ import annotations

from typing import Any

from aiohttp import HttpVersion11, web
from aiohttp.web_urldispatcher import AbstractRoute, DynamicResource, PlainResource

from pbx_bridge.api.auth import authenticate
from pbx_bridge.api.context import DIRECTORY
from pbx_bridge.api.errors import ApiError, error_response

__all__ = ["BEARER_PREFIXES", "continue_after_auth", "finish_routes"]

# Routes whose every request needs a bearer token (CONTRACT section 3).
BEARER_PREFIXES = ("/uapi/phoneCalls/", "/uapi/phoneCall/")


class _ThenClose(web.Response):
    """An answer after which the connection is closed at once. aiohttp would otherwise
    wait up to its lingering time (10 s) for the body this answer did not invite."""

    def __init__(self, protocol: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._protocol_to_close = protocol
        self.force_close()

    async def write_eof(self, data: bytes = b"") -> None:
        await super().write_eof(data)
        self._protocol_to_close.force_close()  # what was written is still flushed


def _refuse(request: web.Request, status: int, code: str, message: str,
            headers: dict[str, str] | None = None) -> web.Response:
    plain = error_response(status, code, message, headers)
    return _ThenClose(
        request.protocol,
        status=status,
        body=plain.body,
        headers={k: v for k, v in plain.headers.items() if k != "Content-Length"},
    )


async def continue_after_auth(request: web.Request) -> web.StreamResponse | None:
    """The Expect handler of the bearer-protected routes: 100 Continue only to a request
    whose token authenticates; otherwise its error, and the connection closed."""
    expect = request.headers.get("Expect", "")
    if expect.lower() != "100-continue":
        return _refuse(request, 417, "expectation_failed", "only Expect: 100-continue is supported")
    try:
        authenticate(request, request.app[DIRECTORY])
    except ApiError as exc:
        return _refuse(request, exc.status, exc.code, exc.message, exc.headers)
    if request.version >= HttpVersion11:
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the answer itself has not started
    return None


def _canonical(route: AbstractRoute) -> str | None:
    resource = route.resource
    if isinstance(resource, PlainResource | DynamicResource):
        return resource.canonical
    return None


def finish_routes(app: web.Application) -> None:
    """Expect handling on the protected routes, then a trailing-slash twin of every
    resource (the twin shares the route's handler and Expect handler)."""
    routes: list[tuple[str, AbstractRoute]] = []
    for route in app.router.routes():
        path = _canonical(route)
        if path is None:
            continue
        if path.startswith(BEARER_PREFIXES):
            # aiohttp takes the Expect handler only as an argument of add_route; the
            # routes here were added elsewhere (routes.py), so it is set on them.
            route._expect_handler = continue_after_auth  # type: ignore[attr-defined]
        routes.append((path, route))
    taken = {path for path, _ in routes}
    twins: dict[str, web.Resource] = {}
    for path, route in routes:
        if path.endswith("/") or path + "/" in taken:
            continue
        twin = twins.get(path)
        if twin is None:
            twin = twins[path] = app.router.add_resource(path + "/")
        twin.add_route(
            route.method,
            route.handler,
            expect_handler=route._expect_handler,  # type: ignore[attr-defined]
        )
