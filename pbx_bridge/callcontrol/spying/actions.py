"""BargeIn, Whisper and Monitor: ``sendCallTo`` is called (Originate, Async, through a
Local channel in ``[pbx-bridge-dial]``) and, once it answers, ChanSpy runs on its call
with the view's answered channel as target (:mod:`.options`). Nothing in the spied
call changes: no channel moves bridges, so a recording of the view goes on untouched
(what the recording holds of the spy is not asserted).

The spy's own call is a new call of ``sendCallTo`` (its own PhoneCall for that
extension), which ends by itself when the view's channel hangs up (``E``).
"""

from __future__ import annotations

from pbx_bridge.callcontrol import pbxcalls
from pbx_bridge.callcontrol.sendto import Destination
from pbx_bridge.callcontrol.spying.options import SpyMode, chanspy_data
from pbx_bridge.calls.tracker import Call
from pbx_bridge.core.link import PbxLink

__all__ = ["DEFAULT_WAIT_S", "spy"]

DEFAULT_WAIT_S = 25  # the contract's default waitForPickup


async def spy(
    link: PbxLink,
    call: Call,
    extension: str,
    view_id: str,
    dest: Destination,
    mode: SpyMode,
    *,
    caller_id: str | None = None,
    wait_s: int = DEFAULT_WAIT_S,
) -> None:
    ch = pbxcalls.answered_channel(call, extension)
    action = "Whisper" if mode == "PrivateWhisper" else mode
    await pbxcalls.originate(
        link,
        dest.number,
        application="ChanSpy",
        data=chanspy_data(ch.uniqueid, mode),
        caller_id=caller_id or f"{action} <{extension}>",
        timeout_s=wait_s,
        tag=f"{action}|{call.id}|{view_id}",
    )
