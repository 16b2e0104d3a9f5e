"""The HTTP(S) listener ``pbx-bridge serve`` runs the app on, hardened against hostile
clients (issue 9).

aiohttp's own server has a keep-alive timer but no deadline for request headers, no cap on
connections, and answers a request its parser refuses in plain text that echoes the
offending bytes. :class:`GuardedRequestHandler` adds, per connection:

- a **header deadline** (``http.header_timeout``): the request line and headers must be
  complete within that time of the connection's start, or of the first byte of a later
  request on a kept-alive connection; otherwise a client that sent part of a request gets
  408 ``request_timeout`` and the connection is closed (one that sent nothing is just
  closed);
- **keep-alive idling** bounded by ``http.keepalive_timeout`` (aiohttp's own timer);
- a **connection cap** (``http.max_connections``): a connection over it is closed as soon
  as it is accepted, before any byte is read;
- **parser errors in the contract's envelope**: ``{"error": {"code", "message"}}`` with a
  fixed message per kind of error, never a byte of the request (which may hold a token).

TLS (``http.tls_cert``/``tls_key``): one :class:`ssl.SSLContext` for the listener's
lifetime; :meth:`HttpService.reload_tls` (SIGHUP) loads the files again into it, so new
connections get the new certificate and open ones keep theirs. Handshakes must finish
within ``http.header_timeout`` too.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMessage,
    DecompressSizeError,
    HttpProcessingError,
    LineTooLong,
)
from aiohttp.web_protocol import RequestHandler

from pbx_bridge.config import HttpSettings

__all__ = [
    "ConnectionLimits",
    "GuardedRequestHandler",
    "GuardedRunner",
    "GuardedServer",
    "HttpService",
    "TlsError",
    "parser_error",
    "tls_context",
]

log = logging.getLogger("pbx_bridge.api.listener")

_CAP_WARNING_EVERY = 10.0  # seconds between two "connection cap reached" warnings


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float
    keepalive_timeout: float
    max_connections: int

    @classmethod
    def of(cls, http: HttpSettings) -> ConnectionLimits:
        return cls(http.header_timeout, http.keepalive_timeout, http.max_connections)


# --------------------------------------------------------------------------- errors


def parser_error(exc: BaseException | None, status: int) -> tuple[int, str, str]:
    """Status, code and message for a request aiohttp could not parse (or a handler
    error that escaped the app). Fixed texts: nothing of the request is echoed."""
    if isinstance(exc, LineTooLong) or (
        isinstance(exc, BadHttpMessage) and "too many headers" in str(exc.message).lower()
    ):
        return (
            431,
            "request_header_too_large",
            "the request line or a header field is too long, or there are too many headers",
        )
    if isinstance(exc, DecompressSizeError):
        return 413, "body_too_large", "request body too large"
    if isinstance(exc, HttpProcessingError) or status < 500:
        return 400, "request_invalid", "the request is not valid HTTP/1.1"
    if status == 504:
        return 504, "pbx_timeout", "the request took too long"
    return 500, "internal_error", "internal error"


def _raw_error(status: int, code: str, message: str) -> bytes:
    """A whole HTTP/1.1 error answer, for when there is no request object to answer."""
    body = orjson.dumps({"error": {"code": code, "message": message}})
    reason = {408: "Request Timeout"}.get(status, "Error")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nX-Content-Type-Options: nosniff\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


_HEADER_TIMEOUT_ANSWER = _raw_error(
    408, "request_timeout", "the request headers did not arrive in time"
)


# --------------------------------------------------------------------------- protocol


class GuardedRequestHandler(RequestHandler):
    """aiohttp's per-connection protocol, plus the header deadline, the connection cap
    and parser errors in the contract's envelope."""

    def __init__(self, manager: GuardedServer, *, limits: ConnectionLimits, **kwargs: Any):
        kwargs["keepalive_timeout"] = limits.keepalive_timeout
        super().__init__(manager, **kwargs)
        self._limits = limits
        self._guard_server = manager
        self._header_timer: asyncio.TimerHandle | None = None
        self._partial_request = False  # bytes of a request head arrived, not all of it
        self._counted = False

    # -- connection cap

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server = self._guard_server
        if server.open_connections >= self._limits.max_connections:
            server.refused_connection()
            # aiohttp's connection_lost does nothing for a handler without a manager.
            self._manager = None
            transport.close()
            return
        server.open_connections += 1
        self._counted = True
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._counted:
            self._counted = False
            self._guard_server.open_connections -= 1
        self._disarm_header_timer()
        super().connection_lost(exc)

    # -- header deadline

    def _waiting_for_request(self) -> bool:
        return self._waiter is not None and not self._waiter.done() and not self._messages

    def data_received(self, data: bytes) -> None:
        # Bytes that arrive while no request is in hand are the head of the next one
        # (a body is read while its request is in hand; aiohttp's lingering read of an
        # unread body also happens before it waits for the next request).
        waiting = self._waiting_for_request() or (
            self._header_timer is not None and not self._request_in_progress
        )
        super().data_received(data)
        if self._messages or self._request_in_progress:
            self._disarm_header_timer()  # a whole request head has arrived
            self._partial_request = False
        elif waiting and data:
            self._partial_request = True
            if self._header_timer is None:
                self._arm_header_timer()

    def _process_keepalive(self) -> None:
        # aiohttp's idle timer; once part of a request has arrived, the connection is no
        # longer idle and the header deadline (with its 408) decides instead.
        if self._partial_request and self._header_timer is not None:
            self._keepalive_handle = None
            return
        super()._process_keepalive()

    def _arm_header_timer(self) -> None:
        self._header_timer = self._loop.call_later(
            self._limits.header_timeout, self._header_deadline_passed
        )

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline_passed(self) -> None:
        self._header_timer = None
        if self.transport is None or self._force_close or not self._waiting_for_request():
            return
        if self._partial_request:
            self.transport.write(_HEADER_TIMEOUT_ANSWER)
        self._guard_server.header_timeouts += 1
        self.force_close()  # transport.close(): what was written is still flushed

    # -- errors of aiohttp's own parser

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, HttpProcessingError):
            # The exception's text holds the offending bytes: log the kind only.
            self.logger.info(
                "refused an unparseable HTTP request (%s, %s)", type(exc).__name__, exc.code
            )
        elif exc is not None:
            self.log_exception("Error handling request", exc_info=exc)
        if request.writer.output_size > 0:
            raise ConnectionError("the answer has started already; cannot send an error")
        status, code, text = parser_error(exc, status)
        response = web.json_response({"error": {"code": code, "message": text}}, status=status)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.force_close()
        return response


class GuardedServer(web.Server):
    """``web.Server`` making :class:`GuardedRequestHandler` protocols."""

    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.open_connections = 0
        self.refused_connections = 0
        self.header_timeouts = 0
        self._last_cap_warning = 0.0

    def refused_connection(self) -> None:
        self.refused_connections += 1
        now = time.monotonic()
        if now - self._last_cap_warning >= _CAP_WARNING_EVERY:
            self._last_cap_warning = now
            log.warning(
                "connection cap reached (http.max_connections = %d): closing new "
                "connections (%d so far)",
                self.limits.max_connections,
                self.refused_connections,
            )

    def __call__(self) -> GuardedRequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, limits=self.limits, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """``web.AppRunner`` whose server is a :class:`GuardedServer`."""

    def __init__(self, app: web.Application, *, limits: ConnectionLimits, **kwargs: Any):
        super().__init__(app, **kwargs)
        self.limits = limits

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # starts the app, as AppRunner does
        return GuardedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=asyncio.get_running_loop(),
            limits=self.limits,
            **plain._kwargs,
        )


class _TcpSite(web.TCPSite):
    """TCPSite with a bound on the TLS handshake (asyncio's default is 60 s)."""

    def __init__(self, *args: Any, handshake_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handshake_timeout = handshake_timeout

    async def start(self) -> None:
        self._runner._reg_site(self)
        server = self._runner.server
        assert server is not None
        # asyncio refuses a handshake timeout without TLS.
        handshake = self._handshake_timeout if self._ssl_context else None
        listener = await asyncio.get_running_loop().create_server(
            server,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
            ssl_handshake_timeout=handshake,
        )
        self._server = listener
        sockets = listener.sockets
        if sockets:
            self._bound_port = sockets[0].getsockname()[1]


# --------------------------------------------------------------------------- TLS


class TlsError(RuntimeError):
    """The certificate or key cannot be used. One line, ready for the user."""


def _load_chain(context: ssl.SSLContext, http: HttpSettings) -> None:
    assert http.tls_cert is not None and http.tls_key is not None
    try:
        context.load_cert_chain(http.tls_cert, http.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(
            f"cannot use http.tls_cert {http.tls_cert} / http.tls_key {http.tls_key}: "
            f"{getattr(exc, 'strerror', None) or exc}"
        ) from None


def tls_context(http: HttpSettings) -> ssl.SSLContext:
    """A server context (TLS 1.2 or later) holding the configured chain. TlsError."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, http)
    return context


# --------------------------------------------------------------------------- service


class HttpService:
    """The app on ``http.host``:``http.port`` (or the given host/port), over TLS when
    configured. ``start()``, ``reload_tls()``, ``close()`` (graceful: requests in flight
    get ``shutdown_timeout`` seconds)."""

    def __init__(
        self,
        app: web.Application,
        http: HttpSettings,
        *,
        host: str | None = None,
        port: int | None = None,
        shutdown_timeout: float = 10.0,
        **runner_kwargs: Any,
    ) -> None:
        self.http = http
        self.host = host if host is not None else http.host
        self._port = port if port is not None else http.port
        self.ssl_context = tls_context(http) if http.tls else None
        self.runner = GuardedRunner(
            app,
            limits=ConnectionLimits.of(http),
            shutdown_timeout=shutdown_timeout,
            **runner_kwargs,
        )
        self._site: _TcpSite | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context is not None else "http"

    @property
    def port(self) -> int:
        return self._site.port if self._site is not None else self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def server(self) -> GuardedServer:
        server = self.runner.server
        assert isinstance(server, GuardedServer), "start() first"
        return server

    async def start(self) -> None:
        await self.runner.setup()
        self._site = _TcpSite(
            self.runner,
            self.host,
            self._port,
            ssl_context=self.ssl_context,
            handshake_timeout=self.http.header_timeout,
        )
        await self._site.start()

    def reload_tls(self) -> bool:
        """Read the certificate and key again (SIGHUP). On an error the old ones stay
        and the error is logged; True if the new ones are in use."""
        if self.ssl_context is None:
            log.info("SIGHUP: no TLS configured, nothing to reload")
            return False
        try:
            # Loaded into a scratch context first: a bad pair must not leave the live
            # context with a new certificate and the old key.
            _load_chain(ssl.create_default_context(ssl.Purpose.CLIENT_AUTH), self.http)
            _load_chain(self.ssl_context, self.http)
        except TlsError as exc:
            log.error("SIGHUP: kept the current certificate: %s", exc)
            return False
        log.info("SIGHUP: reloaded the TLS certificate from %s", self.http.tls_cert)
        return True

    async def close(self) -> None:
        await self.runner.cleanup()
