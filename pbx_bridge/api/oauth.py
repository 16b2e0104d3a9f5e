"""``POST /oauth/token``: the OAuth 2.0 client credentials grant (RFC 6749 section 4.4).

The app authenticates with HTTP Basic (``client_id:client_secret``, each form-encoded as
RFC 6749 2.3.1 says) or with ``client_id`` and ``client_secret`` form fields, never both.
The body is ``application/x-www-form-urlencoded``; unknown parameters are ignored, a
repeated one is refused.

Answers: ``200 {"access_token", "token_type": "Bearer", "expires_in"}`` with
``Cache-Control: no-store``; errors use the contract's envelope with RFC 6749's error
codes: 400 ``invalid_request`` / ``unsupported_grant_type``, 401 ``invalid_client`` (with
``WWW-Authenticate: Basic``).
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import parse_qsl, unquote_plus

from aiohttp import web

from pbx_bridge.api.context import DIRECTORY, SETTINGS
from pbx_bridge.api.errors import ApiError
from pbx_bridge.api.validation import has_control, read_body

__all__ = ["token_handler"]

FORM = "application/x-www-form-urlencoded"
_BASIC = re.compile(r"[Bb][Aa][Ss][Ii][Cc] +([A-Za-z0-9+/]+=*) *")
_MAX_FIELDS = 16


def _invalid_request(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


def _invalid_client() -> ApiError:
    return ApiError(
        401,
        "invalid_client",
        "client authentication failed",
        headers={"WWW-Authenticate": 'Basic realm="pbx-bridge"'},
    )


def _form(raw: bytes) -> dict[str, str]:
    try:
        text = raw.decode("utf-8", errors="strict")
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=_MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise _invalid_request("the body is not a valid form") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if has_control(key) or has_control(value):
            raise _invalid_request("the form holds a control character")
        if key in form:
            raise _invalid_request(f"the parameter {key[:40]!r} is repeated")
        form[key] = value
    return form


def _basic_credentials(request: web.Request) -> tuple[str, str] | None:
    values = request.headers.getall("Authorization", [])
    if not values:
        return None
    if len(values) > 1:
        raise _invalid_request("more than one Authorization header")
    match = _BASIC.fullmatch(values[0])
    if match is None:
        raise _invalid_client()
    try:
        decoded = base64.b64decode(match.group(1), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _invalid_client() from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise _invalid_client()
    client_id, secret = unquote_plus(client_id), unquote_plus(secret)
    if has_control(client_id) or has_control(secret):
        raise _invalid_client()
    return client_id, secret


async def token_handler(request: web.Request) -> web.Response:
    directory = request.app[DIRECTORY]
    # 413 body_too_large above the limit, 408 request_timeout if it trickles in
    raw = await read_body(request, request.app[SETTINGS].http.request_timeout)
    if request.content_type != FORM:
        raise _invalid_request(f"the body must be {FORM}")
    form = _form(raw)
    basic = _basic_credentials(request)
    grant = form.get("grant_type")
    if not grant:
        raise _invalid_request("grant_type is required")
    if grant != "client_credentials":
        raise ApiError(
            400, "unsupported_grant_type", "only grant_type=client_credentials is supported"
        )
    if basic is not None:
        if "client_secret" in form:
            raise _invalid_request("use HTTP Basic or client_secret in the form, not both")
        if "client_id" in form and form["client_id"] != basic[0]:
            raise _invalid_request("client_id differs from the HTTP Basic user")
        client_id, secret = basic
    else:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if not client_id or not secret:
            raise _invalid_client()
    app = directory.verify_client(client_id, secret)
    if app is None:
        raise _invalid_client()
    token, _expires_at = directory.issue_token(app.client_id)
    return web.json_response(
        {"access_token": token, "token_type": "Bearer", "expires_in": directory.token_ttl},
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )
