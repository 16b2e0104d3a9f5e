"""Who may record with *1, written to AstDB for the dialplan's subroutine.

Family ``pbx_bridge``: ``config/recdir`` = `recordings.directory` (if set), and one
``rec/<endpoint>`` = ``<format>,<organization id>,<extension>`` per device of an
extension that records on demand (recording/rules.py). Rewritten whole on every
(re)connect and directory change.
"""

from __future__ import annotations

import logging

from pbx_bridge.directory.store import Directory
from pbx_bridge.pbx.ami import AmiClient, AmiError
from pbx_bridge.recording.naming import file_suffix
from pbx_bridge.recording.rules import on_demand
from pbx_bridge.recording.variables import ASTDB_FAMILY

log = logging.getLogger("pbx_bridge.service")


def policy_value(fmt: str, organization_id: int, extension: str) -> str:
    """The AstDB value the *1 subroutine reads: "<format>,<organization id>,<extension>"."""
    file_suffix(fmt)
    return f"{fmt},{organization_id},{extension}"


async def sync_policy(ami: AmiClient, directory: Directory, base_dir: str) -> None:
    """Replace the family with the directory's policy; a failure is logged, not raised."""
    try:
        await ami.send_action("DBDelTree", {"Family": ASTDB_FAMILY})
        if base_dir:
            await ami.send_action(
                "DBPut", {"Family": ASTDB_FAMILY, "Key": "config/recdir", "Val": base_dir}
            )
        for device, ext in directory.extensions_by_device().items():
            if not on_demand(ext):
                continue
            org = directory.organization_of_extension(ext)
            if org is None:
                continue
            endpoint = device.split("/", 1)[1]
            await ami.send_action(
                "DBPut",
                {
                    "Family": ASTDB_FAMILY,
                    "Key": f"rec/{endpoint}",
                    "Val": policy_value(ext.recording.format, org.id, ext.number),
                },
            )
    except AmiError as exc:
        log.warning("could not write the recording policy to AstDB: %s", exc)
