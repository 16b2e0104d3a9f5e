"""Registry of CLI command groups (each module exposes `register(subparsers)`).

Only what runs next to a PBX: the development sandbox and phones are `python -m devtools`
(devtools/ in the checkout, never in the wheel)."""

from __future__ import annotations

import argparse
import importlib

# module path -> the function in it that adds its subcommands
_COMMAND_MODULES = (
    "pbx_bridge.directory.cli",
    "pbx_bridge.storage.cli",
    "pbx_bridge.server",
    "pbx_bridge.replay",
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
