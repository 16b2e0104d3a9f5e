"""OnHold, OffHold, Park and UnPark on one view of a call: the rules (which state each
action fits, answered 409 `pc_phonecallview_state` otherwise) and the AMI side
(:mod:`pbx_bridge.holding.pbx`). The state the API then shows (onHold, holder, parked,
parkedPos, parkedBy) is the tracker's, from Asterisk's own events, never from what was
asked: each action waits (briefly) until those events arrived."""

from __future__ import annotations

from pbx_bridge.calls.tracker import Call, Channel
from pbx_bridge.config import Settings
from pbx_bridge.core.link import PbxLink
from pbx_bridge.directory.models import Extension
from pbx_bridge.directory.store import Directory
from pbx_bridge.errors import ViewState
from pbx_bridge.holding import pbx
from pbx_bridge.holding.destination import check_send_call_to

__all__ = ["HoldingFeature"]

_SETTLE = 5.0  # seconds to wait for the events that show an action's effect


class HoldingFeature:
    def __init__(self, link: PbxLink, directory: Directory, settings: Settings) -> None:
        self.link = link
        self.directory = directory
        self.settings = settings.callcontrol

    def _own_channel(self, call: Call, ext: Extension) -> Channel:
        if call.linkedid not in self.link.tracker.calls:
            raise ViewState("the call has ended")
        ch = self.link.tracker.recording_channel(call, ext.number)
        if ch is None:
            raise ViewState("the view is not answered (or has hung up)")
        return ch

    async def on_hold(self, call: Call, ext: Extension) -> None:
        """The other party of the view hears music on hold; the view's phone silence."""
        ch = self._own_channel(call, ext)
        if call.hold()[0] or call.parking() is not None:
            raise ViewState("the call is already on hold or parked")
        peer = await pbx.bridge_peer(self.link.ami, ch.name)
        await pbx.put_on_hold(self.link.ami, ch.name, peer)
        await self.link.wait_until(lambda: call.hold()[0], _SETTLE)

    async def off_hold(self, call: Call, ext: Extension) -> None:
        """The held party comes back: bridged again with the view's channel."""
        ch = self._own_channel(call, ext)
        if not call.hold()[0]:
            raise ViewState("the call is not on hold")
        if any(c.on_hold for c in call.channels.values()):
            raise ViewState("the call is held from a phone: resume it on that phone")
        held = await pbx.held_peer(self.link.ami, ch.name)
        peer = next((c for c in call.channels.values() if c.name == held), None)
        if not held or peer is None or not peer.moh:
            raise ViewState("the view holds no call (OffHold without OnHold)")
        await pbx.take_off_hold(self.link.ami, ch.name, held)
        await self.link.wait_until(lambda: not call.hold()[0], _SETTLE)

    async def park(self, call: Call, ext: Extension, seconds: int) -> None:
        """The other party waits in the parking lot; after ``seconds`` it rings the
        view's extension again."""
        ch = self._own_channel(call, ext)
        if call.parking() is not None:
            raise ViewState("the call is already parked")
        peer = await pbx.bridge_peer(self.link.ami, ch.name)
        await pbx.park(self.link.ami, peer, ch.name, seconds, self.settings.parking_lot)
        await self.link.wait_until(lambda: call.parking() is not None, _SETTLE)

    async def unpark(self, call: Call, ext: Extension, send_call_to: str) -> None:
        """The parked call is sent to ``send_call_to`` (an extension of the view's
        organization), which rings."""
        target = check_send_call_to(send_call_to, ext, self.directory)
        parked = [c for c in call.channels.values() if c.parked is not None]
        if not parked:
            raise ViewState("the call is not parked")
        await pbx.redirect(self.link.ami, parked[0].name, self.settings.dial_context,
                           target.number)
        await self.link.wait_until(lambda: call.parking() is None, _SETTLE)
