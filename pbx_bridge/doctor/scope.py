"""One PBX node as the doctor checks it (issue 16): its AMI address and login, its share
of the directory, the folder this host reads its recordings in, and the settings a fix
names. With one node (``[ami]``) this is the whole directory and ``[recordings]``."""

from __future__ import annotations

from dataclasses import dataclass

from pbx_bridge.config import PbxNodeSettings, RecordingsSettings, Settings
from pbx_bridge.core.nodes import on_node, unknown_nodes
from pbx_bridge.directory.models import Extension
from pbx_bridge.directory.store import Directory
from pbx_bridge.doctor.report import Finding, failed

__all__ = ["NodeScope", "scopes", "unplaced"]


@dataclass(frozen=True)
class NodeScope:
    node: PbxNodeSettings  # name, AMI address, username, secret (pbx_secrets applied)
    extensions: dict[str, Extension]  # device -> extension, of the extensions on this node
    recordings: RecordingsSettings  # [recordings] with the node's [pbx.recordings] keys
    listed: bool  # a [[pbx]] entry (else the [ami] section as node "pbx")

    @property
    def name(self) -> str:
        return self.node.name

    def secret_setting(self) -> str:
        if self.listed:
            return (f"PBX_BRIDGE_PBX_SECRETS__{self.name.upper()} (or the secret of its "
                    "[[pbx]] entry)")
        return "PBX_BRIDGE_AMI__SECRET (or [ami] secret)"

    def address_setting(self) -> str:
        return f"host/port of the [[pbx]] entry {self.name!r}" if self.listed else \
            "[ami] host/port"

    def monitor_dir_setting(self) -> str:
        if self.listed:
            return f"monitor_dir in [pbx.recordings] of the [[pbx]] entry {self.name!r}"
        return "[recordings] monitor_dir"


def scopes(settings: Settings, directory: Directory) -> list[NodeScope]:
    """Every configured node in configuration order, each with the extensions that name
    it (the first node also those that name none: `on_node`, as `serve` routes them)."""
    devices = directory.extensions_by_device()
    return [
        NodeScope(
            node,
            {dev: ext for dev, ext in devices.items() if on_node(ext.node, node.name,
                                                                  first=i == 0)},
            node.recordings.applied_to(settings.recordings),
            bool(settings.pbx),
        )
        for i, node in enumerate(settings.nodes())
    ]


def unplaced(settings: Settings, directory: Directory) -> Finding | None:
    """The extensions that name a node the configuration lacks: no node's checks cover
    them, and `serve` answers 503 for them. None when there are none (no line: a
    configuration without such extensions reads as before)."""
    missing = unknown_nodes(directory.extensions_by_device(),
                            {node.name for node in settings.nodes()})
    if not missing:
        return None
    shown = "; ".join(f"{node}: " + ", ".join(sorted(numbers)[:5])
                      + (" ..." if len(numbers) > 5 else "")
                      for node, numbers in sorted(missing.items()))
    names = ", ".join(repr(node) for node in sorted(missing))
    return failed("directory-nodes", f"extensions name a PBX node that is not configured "
                  f"({shown})", f"add a [[pbx]] entry named {names}, or fix their node in "
                  "the directory file and 'pbx-bridge directory load' it")
