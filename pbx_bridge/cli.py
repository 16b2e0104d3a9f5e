"""The `pbx-bridge` entry point.

Every command lives in its own module and registers itself here through a small
`register(subparsers)` function, so the CLI stays one thin dispatcher.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pbx_bridge import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pbx-bridge",
        description="VoipNow-style UAPI PhoneCalls next to an Asterisk PBX.",
    )
    parser.add_argument("--version", action="version", version=f"pbx-bridge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # Imported here so `pbx-bridge --help` stays fast and a broken optional part
    # cannot break unrelated commands at import time.
    from pbx_bridge import commands

    commands.register_all(sub)
    return parser


def run(args: argparse.Namespace, prog: str) -> int:
    """Run a parsed command and give its exit code: on an error, one clear line on
    stderr (``<prog>: error: ...``), not a traceback; 130 on Ctrl-C."""
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except SystemExit:
        raise
    except Exception as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv), "pbx-bridge")


if __name__ == "__main__":
    sys.exit(main())
