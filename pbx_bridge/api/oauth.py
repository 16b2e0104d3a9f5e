"""The OAuth 2.0 endpoints, registered by :func:`add_oauth_routes`.

- ``POST /oauth/token``: the client credentials grant (RFC 6749 section 4.4); also at
  ``POST /oauth/token.php``, VoipNow's path, whose clients add ``type=unifiedapi`` and a
  ``redirect_uri`` (ignored, like every unknown parameter).
- ``POST /oauth/revoke``: token revocation (RFC 7009). The client authenticates as at the
  token endpoint and names a ``token`` (``token_type_hint`` is optional and ignored: there
  is one kind of token). Only the client's own token is revoked, and the answer is 200
  with an empty body whatever happened (unknown, expired, another client's token), so it
  tells nothing about other tokens.

The app authenticates with HTTP Basic (``client_id:client_secret``, each form-encoded as
RFC 6749 2.3.1 says) or with ``client_id`` and ``client_secret`` form fields, never both.
The body is ``application/x-www-form-urlencoded``; unknown parameters are ignored, a
repeated one is refused.

Failed client authentication is logged (client id made printable and cut short, remote
address; never the secret), counted in ``pbx_bridge_oauth_client_auth_failures_total``
and throttled per client id and per address (:mod:`pbx_bridge.api.throttle`): a locked
out client id or address gets 429 ``too_many_requests`` with ``Retry-After``, before its
secret is even looked at.

Answers: ``200 {"access_token", "token_type": "Bearer", "expires_in"}`` with
``Cache-Control: no-store``; errors use the contract's envelope with RFC 6749's error
codes: 400 ``invalid_request`` / ``unsupported_grant_type``, 401 ``invalid_client`` (with
``WWW-Authenticate: Basic``), plus 429 ``too_many_requests``.

The app also gets a background task that deletes expired tokens every
``auth.purge_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, unquote_plus

from aiohttp import web

from pbx_bridge.api.context import DIRECTORY, SETTINGS
from pbx_bridge.api.errors import ApiError
from pbx_bridge.api.metrics import REGISTRY, Metrics
from pbx_bridge.api.throttle import FailedAuthThrottle, Lockout
from pbx_bridge.api.validation import has_control, read_body
from pbx_bridge.directory.models import App
from pbx_bridge.directory.store import Directory, token_id

__all__ = ["THROTTLE", "add_oauth_routes", "revoke_handler", "token_handler"]

log = logging.getLogger("pbx_bridge.api.oauth")

THROTTLE = web.AppKey("oauth_throttle", FailedAuthThrottle)

FORM = "application/x-www-form-urlencoded"
_BASIC = re.compile(r"[Bb][Aa][Ss][Ii][Cc] +([A-Za-z0-9+/]+=*) *")
_MAX_FIELDS = 16
# Real client ids are 32 hex digits; anything much longer is not worth a look-up.
_MAX_CLIENT_ID = 128
# What of a client id may reach the log: a short run of these characters.
_LOGGED_ID_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_.~")
_LOGGED_ID_LEN = 40
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def add_oauth_routes(app: web.Application) -> None:
    """Register the OAuth endpoints, their failed-authentication throttle and the
    periodic purge of expired tokens. Needs ``app[SETTINGS]`` and ``app[DIRECTORY]``."""
    app[THROTTLE] = FailedAuthThrottle(app[SETTINGS].auth)
    app.router.add_post("/oauth/token", token_handler)
    # VoipNow's own path for the same endpoint: its clients post there.
    app.router.add_post("/oauth/token.php", token_handler)
    app.router.add_post("/oauth/revoke", revoke_handler)
    app.cleanup_ctx.append(_token_purge)


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


class _Malformed(Exception):
    """Client credentials that cannot even be looked up (a broken Basic header, a field
    missing): a failed authentication, counted against the address only."""


def _basic_credentials(request: web.Request) -> tuple[str, str] | _Malformed | None:
    values = request.headers.getall("Authorization", [])
    if not values:
        return None
    if len(values) > 1:
        raise _invalid_request("more than one Authorization header")
    match = _BASIC.fullmatch(values[0])
    if match is None:
        return _Malformed()
    try:
        decoded = base64.b64decode(match.group(1), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return _Malformed()
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return _Malformed()
    client_id, secret = unquote_plus(client_id), unquote_plus(secret)
    if has_control(client_id) or has_control(secret):
        return _Malformed()
    return client_id, secret


async def _read_form(request: web.Request) -> tuple[dict[str, str], tuple[str, str] | _Malformed]:
    """The form and the client credentials of an OAuth request (Basic or form fields)."""
    # 413 body_too_large above the limit, 408 request_timeout if it trickles in
    raw = await read_body(request, request.app[SETTINGS].http.request_timeout)
    if request.content_type != FORM:
        raise _invalid_request(f"the body must be {FORM}")
    form = _form(raw)
    basic = _basic_credentials(request)
    if isinstance(basic, tuple):
        if "client_secret" in form:
            raise _invalid_request("use HTTP Basic or client_secret in the form, not both")
        if "client_id" in form and form["client_id"] != basic[0]:
            raise _invalid_request("client_id differs from the HTTP Basic user")
        return form, basic
    if basic is not None:
        return form, basic
    client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    if not client_id or not secret or len(client_id) > _MAX_CLIENT_ID:
        return form, _Malformed()
    return form, (client_id, secret)


def _logged_id(client_id: str) -> str:
    """A client id as it may appear in a log line: printable, short, never a CR/LF."""
    shown = "".join(c if c in _LOGGED_ID_CHARS else "?" for c in client_id[:_LOGGED_ID_LEN])
    return shown + ("..." if len(client_id) > _LOGGED_ID_LEN else "")


def _count(request: web.Request, reason: str) -> None:
    metrics: Metrics = request.app[REGISTRY]  # type: ignore[assignment]
    metrics.client_auth_failures.labels(reason).inc()


def _failed(request: web.Request, client_id: str | None, reason: str) -> ApiError:
    """Log, count and throttle one failed client authentication; the error to answer."""
    remote = request.remote or "-"
    shown = _logged_id(client_id) if client_id is not None else "-"
    log.warning(
        "oauth: client authentication failed (%s): client_id=%s remote=%s", reason, shown, remote
    )
    _count(request, reason)
    for lock in request.app[THROTTLE].failed(client_id, request.remote):
        _log_lockout(lock, shown, remote)
    return _invalid_client()


def _log_lockout(lock: Lockout, shown_id: str, remote: str) -> None:
    key = f"client_id={shown_id}" if lock.kind == "client" else f"remote={lock.key}"
    log.warning(
        "oauth: %s locked out for %.0f s after %d failed client authentications (from %s)",
        key,
        lock.seconds,
        lock.failures,
        remote,
    )


def _too_many(seconds: int) -> ApiError:
    return ApiError(
        429,
        "too_many_requests",
        f"too many failed client authentications; try again in {seconds} s",
        headers={"Retry-After": str(seconds)},
    )


def _authenticate_client(request: web.Request, credentials: tuple[str, str] | _Malformed) -> App:
    """The app whose credentials these are, or the error to answer (401, or 429 while
    the client id or the address is locked out: then the secret is not looked at)."""
    throttle = request.app[THROTTLE]
    client_id = credentials[0] if isinstance(credentials, tuple) else None
    wait = throttle.retry_after(client_id, request.remote)
    if wait > 0:
        _count(request, "locked_out")
        raise _too_many(wait)
    if not isinstance(credentials, tuple):
        raise _failed(request, None, "malformed")
    client_id, secret = credentials
    directory = request.app[DIRECTORY]
    app = directory.verify_client(client_id, secret)
    if app is None:
        # One more look-up on every failure, found or not: the answer's timing does not
        # tell an unknown client id from a wrong secret (the log and metrics do).
        reason = "unknown_client" if directory.app(client_id) is None else "wrong_secret"
        raise _failed(request, client_id, reason)
    if app.disabled:
        raise _failed(request, client_id, "app_disabled")
    throttle.succeeded(client_id)
    return app


async def token_handler(request: web.Request) -> web.Response:
    form, credentials = await _read_form(request)
    grant = form.get("grant_type")
    if not grant:
        raise _invalid_request("grant_type is required")
    if grant != "client_credentials":
        raise ApiError(
            400, "unsupported_grant_type", "only grant_type=client_credentials is supported"
        )
    app = _authenticate_client(request, credentials)
    directory = request.app[DIRECTORY]
    token, _expires_at = directory.issue_token(app.client_id)
    return web.json_response(
        {"access_token": token, "token_type": "Bearer", "expires_in": directory.token_ttl},
        headers=_NO_STORE,
    )


async def revoke_handler(request: web.Request) -> web.Response:
    form, credentials = await _read_form(request)
    token = form.get("token")
    if not token:
        raise _invalid_request("token is required")
    app = _authenticate_client(request, credentials)
    if request.app[DIRECTORY].revoke_token(token, client_id=app.client_id):
        log.info("oauth: token %s revoked by its app %s", token_id(token), app.client_id)
    # 200 also for an unknown, expired or foreign token (RFC 7009 section 2.2).
    return web.Response(status=200, headers=_NO_STORE)


# --------------------------------------------------------------------------- purge


async def _purge_forever(directory: Directory, interval: float) -> None:
    while True:
        try:
            # In a thread: a CLI command holding the database's write lock must not
            # stall the event loop for the busy timeout.
            purged = await asyncio.to_thread(directory.purge_expired)
            if purged:
                log.info("deleted %d expired tokens", purged)
        except Exception:  # a locked or briefly broken database: try again later
            log.warning("could not delete expired tokens", exc_info=True)
        await asyncio.sleep(interval)


async def _token_purge(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(
        _purge_forever(app[DIRECTORY], app[SETTINGS].auth.purge_interval),
        name="pbx-bridge token purge",
    )
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
