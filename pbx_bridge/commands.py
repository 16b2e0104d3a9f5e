"""Registry of CLI command groups (each module exposes `register(subparsers)`).

Only what runs next to a PBX: the development sandbox and phones are `python -m devtools`
(devtools/ in the checkout, never in the wheel)."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # generic in typeshed only, not at run time
    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subcommands = argparse._SubParsersAction
Handler = Callable[[argparse.Namespace], int]

# module path -> the function in it that adds its subcommands
_COMMAND_MODULES = (
    "pbx_bridge.directory.cli",
    "pbx_bridge.storage.cli",
    "pbx_bridge.server",
    "pbx_bridge.replay",
    "pbx_bridge.recordings.cli",
    "pbx_bridge.webhooks.cli",
    "pbx_bridge.doctor.cli",
    "pbx_bridge.nodes.cli",
)


def register_all(sub: argparse._SubParsersAction) -> None:
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real import error inside the module: surface it
                raise
            continue
        module.register(sub)


# --------------------------------------------------------------------------- helpers the
# command modules share, so that every command is declared the same way


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="settings TOML file (default: $PBX_BRIDGE_CONFIG, else built-in defaults)",
    )


def add_group(sub: Subcommands, name: str, help_text: str, description: str) -> Subcommands:
    """A command group (``pbx-bridge <name> COMMAND``)."""
    parser = sub.add_parser(name, help=help_text, description=description)
    return parser.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")


def add_command(
    sub: Subcommands,
    func: Handler,
    name: str,
    *,
    help: str,
    description: str,
) -> argparse.ArgumentParser:
    """A command that reads the settings: ``--config`` and its handler attached."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help, description=description)
    add_config_option(parser)
    parser.set_defaults(func=func)
    return parser
