"""Asking Asterisk whether a recording really runs (Getvar only, AMI class `call`).

A PBX_REC stamp on a channel only says a recording was *started* there. A link lost
between the PBX_REC reservation and the MixMonitor action (or between StopMixMonitor and
the release), or a *1 subroutine of an older extensions.conf that stamped before a
MixMonitor that failed, leaves PBX_REC on a channel that records nothing; believing it
would show `recording` for a file that does not exist and answer every later
StartRecording "already recording". So the MixMonitor whose id the channel holds is
looked up, and stale reservations are released.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from pbx_bridge.core.link import PbxLink
from pbx_bridge.pbx.ami import AmiError, is_success
from pbx_bridge.recording.variables import (
    MIXMONITOR_ID,
    REC_HEADER,
    REC_VAR,
    RECID_VAR,
    parse_rec,
)

log = logging.getLogger("pbx_bridge.recording")

Row = Mapping[str, str]
# EVAL substitutes the channel's PBX_RECID into MIXMONITOR() inside Asterisk, once: the
# value is never evaluated again, whatever the dialplan put in it. A constant: nothing
# from a client reaches this action.
RUNNING_QUESTION = f"EVAL(${{MIXMONITOR(${{{RECID_VAR}}},filename)}})"


class MixMonitorProbe:
    def __init__(self, link: PbxLink) -> None:
        self._link = link
        # Stamps a resync could not check (no answer in time: a busy PBX), by Uniqueid:
        # (started, file) as PBX_REC says. Not shown as recording (never claimed unasked),
        # yet a MixMonitor may run there: a start on such a channel asks first, as after
        # its own timed-out start, or it would add a second MixMonitor to the view.
        self.unchecked: dict[str, tuple[float, str | None]] = {}

    def keep_unchecked(self, uniqueids: set[str]) -> None:
        """Forget the unchecked stamps of channels that are gone (a resync's rows)."""
        for uid in self.unchecked.keys() - uniqueids:
            del self.unchecked[uid]

    async def runs(self, channel: str) -> bool | None:
        """Does the MixMonitor whose id the channel holds in PBX_RECID still exist
        (MIXMONITOR(<id>,filename) non-empty)? One Getvar: Asterisk reads the id and
        looks it up itself (a resync checks every stamp, and one session runs its
        actions one after another: one round per stamp, not two; issue 15). Only if
        Asterisk refuses that, the two Getvars of `runs_in_two`."""
        resp = await self._link.ami.send_action(
            "Getvar", {"Channel": channel, "Variable": RUNNING_QUESTION}
        )
        if is_success(resp):
            # Empty: no id on the channel, or no MixMonitor with it (ended).
            return bool(resp.get("Value"))
        return await self.runs_in_two(channel)

    async def runs_in_two(self, channel: str) -> bool | None:
        """`runs` with the id read first. No id on the channel: nothing of ours runs
        (False). None if Asterisk refuses the question (e.g. the channel is gone).
        AmiNotConnected / AmiTimeout propagate."""
        ami = self._link.ami
        resp = await ami.send_action("Getvar", {"Channel": channel, "Variable": RECID_VAR})
        if not is_success(resp):
            return None
        rec_id = resp.get("Value", "")
        if not MIXMONITOR_ID.fullmatch(rec_id):
            return False
        resp = await ami.send_action(
            "Getvar", {"Channel": channel, "Variable": f"MIXMONITOR({rec_id},filename)"}
        )
        if not is_success(resp):
            return None
        return bool(resp.get("Value"))

    async def checked_row(self, row: Row) -> Row:
        """A CoreShowChannel row whose PBX_REC stamp is kept only if its MixMonitor
        runs; a stale stamp is released on the channel too."""
        channel, uid = row.get("Channel", ""), row.get("Uniqueid", "")
        if not channel:
            return {**row, REC_HEADER: ""}
        try:
            running = await self.runs(channel)
        except AmiError as exc:
            log.info("%s: cannot check its recording (%s); not shown", channel, exc)
            started, file = parse_rec(row.get(REC_HEADER))
            if uid and started is not None:
                self.unchecked[uid] = (started, file)
            return {**row, REC_HEADER: ""}
        self.unchecked.pop(uid, None)
        if running:
            return row
        if running is False:
            log.warning(
                "%s (extension %s): PBX_REC set but no MixMonitor running; releasing it",
                channel, self._link.tracker.extension_of(channel) or "-",
            )
            self._link.spawn(self._link.setvar(channel, REC_VAR, ""))
        return {**row, REC_HEADER: ""}
