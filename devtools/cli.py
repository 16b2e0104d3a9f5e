"""The development command line: `python -m devtools sandbox|phone ...`.

Same shape as `pbx-bridge`'s CLI: each module registers its subcommand through a small
`register(subparsers)` function.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from devtools import phones, sandbox

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
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except SystemExit:
        raise
    except Exception as exc:  # one clear line for the developer, not a traceback
        print(f"devtools: error: {exc}", file=sys.stderr)
        return 1
