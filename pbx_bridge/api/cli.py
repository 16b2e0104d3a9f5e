"""``pbx-bridge serve [--config FILE]``: run the HTTP service and its AMI connection.

Binds to ``http.host``:``http.port`` (loopback unless configured otherwise), over TLS
when ``http.tls_cert``/``tls_key`` are set (see :mod:`pbx_bridge.api.server` for the
deadlines and caps on connections). SIGTERM and SIGINT shut down gracefully: the listener
closes, requests in flight get ``SHUTDOWN_TIMEOUT`` seconds to finish, the AMI connection
is closed. SIGHUP reloads the TLS certificate and key. Recordings in progress are
Asterisk's (MixMonitor) and keep running.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from typing import TYPE_CHECKING

from pbx_bridge.config import Settings, load_settings
from pbx_bridge.secret_check import refused_secret

if TYPE_CHECKING:
    from pbx_bridge.directory.store import Directory

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
    from pbx_bridge.directory.store import Directory, Migrate

    settings = load_settings(args.config)
    refused = refused_secret(settings, demo=args.demo)
    if refused:
        print(f"pbx-bridge serve: {refused}", file=sys.stderr)
        return 2
    setup_logging(settings)
    # Never migrates: refuses an unmigrated or outdated schema (`pbx-bridge db upgrade`).
    directory = Directory.from_settings(settings, migrate=Migrate.NOTHING)
    try:
        asyncio.run(_run(settings, directory))
    finally:
        directory.close()
    logging.getLogger("pbx_bridge.serve").info("stopped")
    return 0


async def _run(settings: Settings, directory: Directory) -> None:
    """Serve until SIGTERM/SIGINT; SIGHUP reloads the TLS certificate."""
    from pbx_bridge.api.app import AccessLogger, create_app
    from pbx_bridge.api.server import HttpService
    from pbx_bridge.service import Bridge

    log = logging.getLogger("pbx_bridge.serve")
    # Built inside the running loop: the bridge creates asyncio objects.
    app = create_app(settings, directory, Bridge(settings, directory))
    service = HttpService(
        app,
        settings.http,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        access_log=logging.getLogger("pbx_bridge.access"),
        access_log_class=AccessLogger,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, service.reload_tls)
    try:
        await service.start()
        log.info(
            "serving on %s (AMI %s:%d, database %s)",
            service.url,
            settings.ami.host,
            settings.ami.port,
            directory.path,
        )
        await stop.wait()
        log.info("shutting down")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await service.close()


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the HTTP API and the AMI connection",
        description=(
            "Run the UAPI PhoneCalls HTTP service next to Asterisk: connect to AMI, follow "
            "the calls, serve /uapi/phoneCalls, /healthz, /readyz, /metrics and "
            "/oauth/token on http.host:http.port (HTTPS with http.tls_cert/tls_key). Stops "
            "gracefully on SIGTERM/SIGINT; SIGHUP reloads the TLS certificate."
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
