"""The names and formats recording shares with Asterisk and its dialplan.

Whoever starts a recording (the bridge, the *1 subroutine in asterisk-conf/
extensions.conf, [pbx-bridge-rec]) first stamps the view's channel with PBX_REC
(``<start epoch>|<file>``), then has MixMonitor store its id in PBX_RECID (MixMonitor
option i()). MIXMONITOR(<id>,filename) is non-empty exactly while that MixMonitor exists
on the channel. Both are read with Getvar (class `call`), so no `command`/`system` AMI
rights are needed to check a recording. The *1 subroutine reads who may record from
AstDB (family ASTDB_FAMILY) and reports what it did not start as a UserEvent. A paused
recording keeps running muted, stamped with PBX_RECPAUSED (see `paused_since`).
"""

from __future__ import annotations

import re

from pbx_bridge.calls.tracker import finite_epoch

REC_VAR = "PBX_REC"
# How AMI events and CoreShowChannel rows carry PBX_REC (manager.conf channelvars).
REC_HEADER = f"ChanVariable({REC_VAR})"
RECID_VAR = "PBX_RECID"
# PauseRecording stamps the channel with PBX_RECPAUSED (``<epoch when paused>``) and mutes
# the MixMonitor (AMI MixMonitorMute, both directions); ResumeRecording unmutes it and
# clears the stamp. A stamp older than the running recording's PBX_REC start is stale.
RECPAUSED_VAR = "PBX_RECPAUSED"
RECPAUSED_HEADER = f"ChanVariable({RECPAUSED_VAR})"
MIXMONITOR_OPTIONS = f"i({RECID_VAR})"
# MixMonitor ids are the address of its datastore, printed with %p.
MIXMONITOR_ID = re.compile(r"0x[0-9a-fA-F]{1,16}")
# The *1 subroutine reports what it did not start (UserEvent PbxBridgeRec).
STAR1_EVENT = "PbxBridgeRec"
ASTDB_FAMILY = "pbx_bridge"


def rec_value(started: str, file: str) -> str:
    """PBX_REC as whoever starts a recording writes it: ``<epoch>|<file>``. One variable,
    so reserving a view costs Asterisk one Setvar (the stamp never holds a "|")."""
    return f"{started}|{file}"


def parse_rec(value: str | None) -> tuple[float | None, str | None]:
    """PBX_REC -> (start epoch, file). A bare epoch (bridges before the file joined the
    stamp) still reads; an empty or garbled value is no recording."""
    if not value:
        return None, None
    stamp, _, file = value.partition("|")
    started = finite_epoch(stamp)
    return started, (file or None) if started is not None else None


def paused_since(value: str | None, started: float | None) -> float | None:
    """PBX_RECPAUSED -> when the running recording was paused, or None. Only a stamp of
    the recording that runs counts: one from before its start (``started``, from PBX_REC)
    was left by an earlier recording of the channel (say, one the *1 toggle stopped)."""
    paused = finite_epoch(value)
    if paused is None or started is None or paused < started:
        return None
    return paused

# MixMonitor itself sets MIXMONITOR_FILENAME on its channel (the file as Asterisk opens
# it: an absolute path) before it reports MixMonitorStart; listed in manager.conf's
# channelvars, every event carries it. It names the file of a recording started outside
# the bridge (no PBX_REC stamp), and outlives that recording: it says which file, never
# whether a MixMonitor still runs.
MIXMONITOR_FILE_VAR = "MIXMONITOR_FILENAME"
MIXMONITOR_FILE_HEADER = f"ChanVariable({MIXMONITOR_FILE_VAR})"
