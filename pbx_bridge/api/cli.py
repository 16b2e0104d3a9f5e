"""``pbx-bridge serve [--config FILE] [--demo]``: its arguments; what it runs is
:func:`pbx_bridge.server.run`, the composition root.

Binds to ``http.host``:``http.port`` (loopback unless configured otherwise), over TLS
when ``http.tls_cert``/``tls_key`` are set (see :mod:`pbx_bridge.api.listener` for the
deadlines and caps on connections). SIGTERM and SIGINT shut down gracefully: the listener
closes, requests in flight get ``http.shutdown_timeout`` seconds to finish, the AMI
connection is closed. SIGHUP reloads the TLS certificate and key.
"""

from __future__ import annotations

import argparse

__all__ = ["register"]


def _serve(args: argparse.Namespace) -> int:
    # Imported here: the other commands need not load aiohttp and SQLAlchemy.
    from pbx_bridge.server import run

    return run(args.config, demo=args.demo)


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
