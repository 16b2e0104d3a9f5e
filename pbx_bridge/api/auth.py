"""Bearer tokens (CONTRACT section 3).

A token is looked for, in this order, in
1. ``Authorization: Bearer <token>`` (RFC 6750),
2. ``Authentication: Bearer <token>`` (the header of the original VoipNow example),
3. the query parameter ``accessRequestToken``.
The first place that holds one is the only one used. A token that is missing, malformed,
unknown or expired is 401 ``unauthorized`` with ``WWW-Authenticate: Bearer``.

Tokens are never logged and never part of an error message.
"""

from __future__ import annotations

import re

from aiohttp import web

from pbx_bridge.api.errors import BEARER_CHALLENGE, ApiError
from pbx_bridge.directory.models import Principal
from pbx_bridge.directory.store import Directory

__all__ = ["QUERY_TOKEN", "TOKEN_HEADERS", "authenticate", "bearer_token", "extract_token"]

TOKEN_HEADERS = ("Authorization", "Authentication")
QUERY_TOKEN = "accessRequestToken"
# RFC 6750 b64token; the lengths the directory accepts. Bounded repetition and no
# nesting: at most 512 steps of backtracking whatever the input.
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]{1,512}=*")
_BEARER = "bearer"


def bearer_token(value: str) -> str | None:
    """The token of a ``Bearer <token>`` header value (scheme case-insensitive, spaces
    around the token allowed), or None if the value is not a Bearer credential (another
    scheme, no space after it, or whitespace inside the token).

    Plain string operations, linear in the length of the value: a regex such as
    ``Bearer +(\\S*) *`` backtracks quadratically on ``Bearer`` + thousands of spaces +
    ``a b`` (0.85 s of the event loop per request for an 8 KB header; issue 9).
    """
    scheme, sep, rest = value.partition(" ")
    if not sep or not scheme.isascii() or scheme.lower() != _BEARER:
        return None
    token = rest.strip(" ")
    if any(char.isspace() for char in token):
        return None
    return token


def _unauthorized(message: str, *, invalid_token: bool) -> ApiError:
    challenge = BEARER_CHALLENGE
    if invalid_token:
        challenge += ', error="invalid_token"'
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})


def extract_token(request: web.Request) -> str | None:
    """The token the request carries (not yet checked), or None if it carries none.

    The places are tried in order. A header with another scheme (say, Basic auth a proxy
    added) is passed over for the next place; if no place holds a token, that is the
    401's message. Several values in one place are ambiguous: 401.
    """
    other_scheme: str | None = None
    for name in TOKEN_HEADERS:
        values = request.headers.getall(name, [])
        if not values:
            continue
        if len(values) > 1:
            raise _unauthorized(f"more than one {name} header", invalid_token=False)
        token = bearer_token(values[0])
        if token is None:
            other_scheme = other_scheme or f"the {name} header is not a Bearer token"
            continue
        return token
    values = request.rel_url.query.getall(QUERY_TOKEN, [])
    if len(values) > 1:
        raise _unauthorized(f"more than one {QUERY_TOKEN} parameter", invalid_token=False)
    if values:
        return values[0]
    if other_scheme:
        raise _unauthorized(other_scheme, invalid_token=False)
    return None


def authenticate(request: web.Request, directory: Directory) -> Principal:
    """The principal behind the request's token, or ApiError 401."""
    token = extract_token(request)
    if token is None:
        raise _unauthorized("a bearer token is required", invalid_token=False)
    if _TOKEN.fullmatch(token) is None:
        raise _unauthorized("the bearer token is malformed", invalid_token=True)
    principal = directory.authenticate(token)
    if principal is None:
        raise _unauthorized("the bearer token is unknown or expired", invalid_token=True)
    return principal
