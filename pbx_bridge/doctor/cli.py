"""`pbx-bridge doctor [--json]`: exit 0 only when every check passed."""

from __future__ import annotations

import argparse
import asyncio

from pbx_bridge.commands import Subcommands, add_command
from pbx_bridge.config import load_settings
from pbx_bridge.directory.store import Directory
from pbx_bridge.doctor.report import all_passed, as_json, as_text
from pbx_bridge.doctor.run import diagnose
from pbx_bridge.storage import Migrate


def _doctor(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    with Directory.from_settings(settings, migrate=Migrate.NOTHING) as directory:
        findings = asyncio.run(diagnose(settings, directory))
    print(as_json(findings) if args.json else as_text(findings))
    return 0 if all_passed(findings) else 1


def register(sub: Subcommands) -> None:
    parser = add_command(
        sub, _doctor, "doctor",
        help="check the PBX for everything the bridge relies on (read-only, no calls)",
        description="Log in to AMI with the bridge's own credentials and check, one line "
        "each with a fix: AMI rights, channelvars, timestampevents, modules, the *1 feature "
        "and subroutine, DYNAMIC_FEATURES on each extension's dial paths, endpoints, the "
        "monitor folder, the AstDB policy. Exit 0 only when all pass.",
    )
    parser.add_argument("--json", action="store_true", help="one JSON document")
