"""`pbx-bridge doctor [--node NAME] [--json]`: exit 0 only when every check of every
node passed; 2 when --node names no configured node."""

from __future__ import annotations

import argparse
import asyncio
import sys

from pbx_bridge.commands import Subcommands, add_command
from pbx_bridge.config import load_settings
from pbx_bridge.directory.store import Directory
from pbx_bridge.doctor.report import all_passed, as_json, as_text
from pbx_bridge.doctor.run import UnknownNode, diagnose
from pbx_bridge.storage import Migrate


def _doctor(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    names = [node.name for node in settings.nodes()]
    if args.node is not None and args.node not in names:
        print(f"pbx-bridge doctor: --node: {UnknownNode.message(args.node, names)}",
              file=sys.stderr)
        return 2
    with Directory.from_settings(settings, migrate=Migrate.NOTHING) as directory:
        findings = asyncio.run(diagnose(settings, directory, args.node))
    # With several nodes, every line says which node it is about.
    print(as_json(findings) if args.json else as_text(findings, named=len(names) > 1))
    return 0 if all_passed(findings) else 1


def register(sub: Subcommands) -> None:
    parser = add_command(
        sub, _doctor, "doctor",
        help="check the PBX for everything the bridge relies on (read-only, no calls)",
        description="Log in to AMI with the bridge's own credentials and check, one line "
        "each with a fix: AMI rights, channelvars, timestampevents, modules, the *1 feature "
        "and subroutine, DYNAMIC_FEATURES on each extension's dial paths, endpoints, the "
        "monitor folder, the AstDB policy. With several [[pbx]] nodes: each node, with its "
        "own login and its own extensions, and that its Asterisk systemname is its own. "
        "Exit 0 only when all pass; 2 when --node names no configured node.",
    )
    parser.add_argument("--node", metavar="NAME", help="check this PBX node only (a [[pbx]] "
                        "name; default: every node)")
    parser.add_argument("--json", action="store_true", help="one JSON document")
