"""The media type of a PUT body: JSON, or nothing said.

VoipNow's own clients send ``Content-Type: application/json`` with their PUT. A body
declared as anything else (a form, text, multipart: often ``curl -d`` without ``-H``)
is 415 ``unsupported_media_type`` rather than being parsed as JSON anyway. Parameters
such as ``charset=utf-8`` are accepted (the body must be UTF-8 whatever they say), and so
is a request with no ``Content-Type`` at all (lenient: the body is judged for what it is).

Plain string operations: the header is client input (no regex, see issue 9).
"""

from __future__ import annotations

from aiohttp import web

from pbx_bridge.api.errors import ApiError

__all__ = ["JSON", "require_json"]

JSON = "application/json"


def media_type(value: str) -> str:
    """``type/subtype`` of a Content-Type value, lower case, parameters dropped."""
    return value.partition(";")[0].strip(" \t").lower()


def require_json(request: web.Request) -> None:
    """ApiError 415 unless the request's body is declared JSON or not declared."""
    values = request.headers.getall("Content-Type", [])
    if not values:
        return
    if len(values) > 1 or media_type(values[0]) != JSON:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"the body must be {JSON} (Content-Type: {JSON})",
        )
