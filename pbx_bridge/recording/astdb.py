"""Who records, written to AstDB for the dialplan's subroutine [pbx-bridge-rec].

Family ``pbx_bridge``: ``config/recdir`` = `recordings.directory` (if set), and one
``rec/<endpoint>`` = ``<format>,<organization id>,<extension>,<trigger>`` per device of
an extension that records on demand (trigger ``star1``: *1 may toggle it) or every call
(trigger ``always``: the dialplan starts MixMonitor itself when the device answers, so
"always" holds while the bridge is down; *1 is refused there). The *1 path reads the
first three fields as before. Rewritten whole on every (re)connect and directory change.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from pbx_bridge.directory.models import Extension
from pbx_bridge.directory.store import Directory
from pbx_bridge.pbx.ami import AmiClient, AmiError
from pbx_bridge.recording.naming import file_suffix
from pbx_bridge.recording.rules import on_demand, records_always
from pbx_bridge.recording.variables import ASTDB_FAMILY

log = logging.getLogger("pbx_bridge.recording")


def policy_value(fmt: str, organization_id: int, extension: str, trigger: str) -> str:
    """The AstDB value the subroutine reads:
    "<format>,<organization id>,<extension>,<star1|always>"."""
    file_suffix(fmt)
    if trigger not in ("star1", "always"):
        raise ValueError(f"unknown recording trigger {trigger!r}")
    return f"{fmt},{organization_id},{extension},{trigger}"


def expected_policy(
    directory: Directory, base_dir: str, extensions: Mapping[str, Extension] | None = None
) -> dict[str, str]:
    """The family's keys and values as the directory says they should be (what
    `sync_policy` writes; `pbx-bridge doctor` compares AstDB with it). ``extensions``:
    device -> extension of one PBX node's extensions, whose policy that node's AstDB
    gets (None: every extension of the directory)."""
    policy = {"config/recdir": base_dir} if base_dir else {}
    devices = directory.extensions_by_device() if extensions is None else extensions
    for device, ext in devices.items():
        if not (on_demand(ext) or records_always(ext)):
            continue
        org = directory.organization_of_extension(ext)
        if org is None:
            continue
        endpoint = device.split("/", 1)[1]
        policy[f"rec/{endpoint}"] = policy_value(
            ext.recording.format, org.id, ext.number, ext.recording.trigger
        )
    return policy


async def sync_policy(
    ami: AmiClient, directory: Directory, base_dir: str,
    extensions: Mapping[str, Extension] | None = None,
) -> None:
    """Replace the family with the directory's policy (of ``extensions``: see
    `expected_policy`); a failure is logged, not raised."""
    try:
        await ami.send_action("DBDelTree", {"Family": ASTDB_FAMILY})
        for key, value in expected_policy(directory, base_dir, extensions).items():
            await ami.send_action("DBPut", {"Family": ASTDB_FAMILY, "Key": key, "Val": value})
    except AmiError as exc:
        log.warning("could not write the recording policy to AstDB: %s", exc)
