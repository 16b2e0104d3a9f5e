"""``pbx-bridge nodes``: the status of each PBX node's link in the running service.

It asks the service (``GET /readyz/<node>`` for each node of the configuration), so it
shows what the service's own links see, not a fresh AMI login of its own: a node can
answer a login and still be unready in the service (not resynced yet, a clashing
systemname). Exit status: 0 every node ready, 1 one or more not, 2 the service does
not answer.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass

from pbx_bridge.commands import Subcommands, add_config_option
from pbx_bridge.config import ConfigError, load_settings

__all__ = ["NodeStatus", "register", "status_of"]

_TIMEOUT = 5.0


@dataclass(frozen=True)
class NodeStatus:
    node: str
    ready: bool
    detail: str  # "ready", or why not (the service's message)


def status_of(base_url: str, name: str) -> NodeStatus:
    """One node's status from the service at ``base_url``; OSError: no answer."""
    url = f"{base_url.rstrip('/')}/readyz/{urllib.parse.quote(name)}"
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT) as resp:
            resp.read()
            return NodeStatus(name, True, "ready")
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("message", "")
        except ValueError:
            message = ""
        if exc.code == 404:
            message = "the running service has no such node (restart it with this config)"
        return NodeStatus(name, False, message or f"HTTP {exc.code}")


def _run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"pbx-bridge nodes: {exc}", file=sys.stderr)
        return 2
    base = args.url or settings.http.public_base_url
    if not base.startswith(("http://", "https://")):
        print("pbx-bridge nodes: --url must be an http:// or https:// URL", file=sys.stderr)
        return 2
    try:
        statuses = [status_of(base, node.name) for node in settings.nodes()]
    except OSError as exc:
        print(f"pbx-bridge nodes: the service at {base} does not answer: {exc}",
              file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([asdict(s) for s in statuses]))
    else:
        width = max(len(s.node) for s in statuses)
        for s in statuses:
            print(f"{s.node:<{width}}  {'ready' if s.ready else 'NOT READY'}"
                  + ("" if s.ready else f"  {s.detail}"))
    return 0 if all(s.ready for s in statuses) else 1


def register(sub: Subcommands) -> None:
    parser = sub.add_parser(
        "nodes",
        help="the status of each PBX node's link in the running service",
        description=(
            "Ask the running `pbx-bridge serve` (GET /readyz/<node>, unauthenticated) "
            "whether each PBX node of the configuration ([[pbx]] entries, or [ami] as "
            "node \"pbx\") is ready, and why not. Exit 0: all ready; 1: one or more not; "
            "2: the service does not answer."
        ),
    )
    add_config_option(parser)
    parser.add_argument("--url", help="the service's base URL (default: http.public_base_url)")
    parser.add_argument("--json", action="store_true", help="one JSON array")
    parser.set_defaults(func=_run)
