"""The development command line: `python -m devtools sandbox|phone ...`.

Same shape as `pbx-bridge`'s CLI: each module registers its subcommand through a small
`register(subparsers)` function.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from devtools import phones, sandbox
from pbx_bridge.cli import run

PROG = "python -m devtools"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Development tooling for pbx_bridge: the sandbox Asterisk and SIP phones.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sandbox.register(sub)
    phones.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv), "devtools")
