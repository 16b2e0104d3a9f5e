"""``pbx-bridge serve [--config FILE]``: run the HTTP service and its AMI connection.

Binds to ``http.host``:``http.port`` (loopback unless configured otherwise). SIGTERM and
SIGINT shut down gracefully: the listener closes, requests in flight get
``SHUTDOWN_TIMEOUT`` seconds to finish, the AMI connection is closed. Recordings in
progress are Asterisk's (MixMonitor) and keep running.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from aiohttp import web

from pbx_bridge.config import Settings, load_settings
from pbx_bridge.secret_check import refused_secret

__all__ = ["SHUTDOWN_TIMEOUT", "register"]

SHUTDOWN_TIMEOUT = 10.0


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.logging.json_:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.logging.level)


def _serve(args: argparse.Namespace) -> int:
    from pbx_bridge.api.app import AccessLogger, create_app
    from pbx_bridge.directory.store import Directory
    from pbx_bridge.service import Bridge

    settings = load_settings(args.config)
    refused = refused_secret(settings, demo=args.demo)
    if refused:
        print(f"pbx-bridge serve: {refused}", file=sys.stderr)
        return 2
    setup_logging(settings)
    log = logging.getLogger("pbx_bridge.serve")
    directory = Directory.open(
        settings.directory.database,
        token_ttl=settings.auth.token_ttl,
        max_token_ttl=settings.auth.max_token_ttl,
    )

    async def make_app() -> web.Application:
        # Built inside the running loop: the bridge creates asyncio objects.
        return create_app(settings, directory, Bridge(settings, directory))

    log.info(
        "serving on http://%s:%d (AMI %s:%d, directory %s)",
        settings.http.host,
        settings.http.port,
        settings.ami.host,
        settings.ami.port,
        settings.directory.database,
    )
    try:
        web.run_app(
            make_app(),
            host=settings.http.host,
            port=settings.http.port,
            access_log=logging.getLogger("pbx_bridge.access"),
            access_log_class=AccessLogger,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            handle_signals=True,
            print=None,
        )
    finally:
        directory.close()
    log.info("stopped")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the HTTP API and the AMI connection",
        description=(
            "Run the UAPI PhoneCalls HTTP service next to Asterisk: connect to AMI, follow "
            "the calls, serve /uapi/phoneCalls, /healthz, /readyz, /metrics and "
            "/oauth/token on http.host:http.port. Stops gracefully on SIGTERM/SIGINT."
        ),
    )
    serve.add_argument(
        "--config",
        metavar="FILE",
        help="settings TOML file (default: $PBX_BRIDGE_CONFIG, else built-in defaults)",
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="accept an empty, placeholder or demo AMI secret (never on a shared machine)",
    )
    serve.set_defaults(func=_serve)
