"""The error envelope (CONTRACT section 2, Errors) and the middleware that produces it.

Every 4xx/5xx answer of the service has the body ``{"error": {"code", "message"}}``,
whoever raised it: anything of the one hierarchy in :mod:`pbx_bridge.errors` (the
handlers' :class:`ApiError`, the access policy's refusals, the PBX link's and the
recording feature's), aiohttp's router and body reader (404, 405, 413), or a bug (500
``internal_error``, logged with its traceback, nothing of it sent to the client).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from pbx_bridge.errors import (
    ApiError,
    PbxBridgeError,
    PbxRefused,
    PbxTimeout,
    PbxUnavailable,
    ViewState,
)

__all__ = [
    "BEARER_CHALLENGE",
    "ApiError",
    "error_middleware",
    "error_response",
]

log = logging.getLogger("pbx_bridge.api")

BEARER_CHALLENGE = 'Bearer realm="pbx-bridge"'

# aiohttp's own HTTP exceptions -> our codes. Anything else 4xx is `request_invalid`.
_HTTP_CODES = {
    404: ("not_found", "no such resource"),
    405: ("method_not_allowed", "method not allowed on this resource"),
    413: ("body_too_large", "request body too large"),
}

# What the client reads for the PBX errors, whose own message is the AMI detail (logged
# where it matters); "{message}" stands for that message.
_CLIENT_TEXT: dict[type[PbxBridgeError], str] = {
    PbxUnavailable: "the PBX is not available right now",
    PbxTimeout: "the PBX did not answer in time",
    ViewState: "the view cannot be changed: {message}",
    PbxRefused: "the PBX refused the action on this view",
}


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    hdrs = dict(headers or {})
    if status == 401 and "WWW-Authenticate" not in hdrs:
        hdrs["WWW-Authenticate"] = BEARER_CHALLENGE
    response = web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=hdrs
    )
    if status == 408:
        response.force_close()  # what is left of a late body is not worth waiting for
    return response


def _from_exception(exc: Exception) -> web.Response | None:
    """The envelope for a known exception; None for an unexpected one."""
    if isinstance(exc, PbxBridgeError):
        text = _CLIENT_TEXT.get(type(exc))
        message = text.format(message=exc.message) if text else exc.message
        return error_response(exc.status, exc.code, message, exc.headers)
    if isinstance(exc, web.HTTPException):
        return _from_http_exception(exc)
    return None


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    status = exc.status
    code, message = _HTTP_CODES.get(status, ("request_invalid", exc.reason or "invalid request"))
    if status >= 500:
        code, message = "internal_error", "internal error"
    headers = {}
    allow = exc.headers.get("Allow")
    if allow is not None:
        headers["Allow"] = allow
    return error_response(status, code, message, headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:  # redirects and the like pass through untouched
            raise
        return _from_http_exception(exc)
    except Exception as exc:
        response = _from_exception(exc)
        if response is not None:
            return response
        # raw_path: still percent-encoded, so no CR/LF can reach the log; no query string
        # (it may hold an accessRequestToken).
        log.exception("internal error on %s %s", request.method, request.rel_url.raw_path)
        return error_response(500, "internal_error", "internal error")
