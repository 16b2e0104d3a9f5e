"""Transfer, TransferToVoicemail and PickUp on Asterisk's own mechanisms.

- Transfer: AMI ``BlindTransfer`` on the view's answered channel (the transferer): its
  bridge peer goes to ``sendCallTo`` in ``[pbx-bridge-dial]`` and the view's channel
  leaves the call, exactly as if the phone had sent a SIP REFER (the same BlindTransfer
  event: the recordings catalog ends the view's recording with ``reason: transferred``
  and the other party's recording goes on, as for a transfer from the handset).
- TransferToVoicemail: the same, to ``sendCallTo`` in ``[pbx-bridge-voicemail]`` (which
  runs ``VoiceMail(<extension>@default,u)``).
- PickUp: the view must be ringing; ``sendCallTo`` is called (Originate, Async, through
  a Local channel in ``[pbx-bridge-dial]``) and, once answered, takes the ringing call
  with ``PickupChan(<the ringing channel>)`` (app_directed_pickup): the caller is then
  bridged with ``sendCallTo`` and the ringing phone stops. We chose PickupChan over a
  Redirect of the caller's channel: the caller never leaves its Dial (its CDR, its
  recording and its Linkedid stay), and a pickup answered by nobody changes nothing.

Each returns once Asterisk accepted the action; a transfer then waits (briefly) until
the view's channel has left the call, so the PhoneCall answered shows the PBX's state.
"""

from __future__ import annotations

from pbx_bridge.callcontrol import pbxcalls
from pbx_bridge.callcontrol.sendto import Destination
from pbx_bridge.calls.tracker import Call
from pbx_bridge.core.link import PbxLink

__all__ = ["SETTLE_S", "pick_up", "transfer", "transfer_to_voicemail"]

# How long a transfer waits for Asterisk to report the transferer gone (it usually
# takes a few milliseconds); the answer is the PhoneCall as it is then.
SETTLE_S = 3.0
PICKUP_RING_S = 25  # how long sendCallTo rings for a pickup


async def transfer(link: PbxLink, call: Call, extension: str, dest: Destination) -> None:
    await _blind(link, call, extension, pbxcalls.DIAL_CONTEXT, dest.number)


async def transfer_to_voicemail(
    link: PbxLink, call: Call, extension: str, dest: Destination
) -> None:
    await _blind(link, call, extension, pbxcalls.VOICEMAIL_CONTEXT, dest.number)


async def _blind(link: PbxLink, call: Call, extension: str, context: str, exten: str) -> None:
    ch = pbxcalls.answered_channel(call, extension)
    await pbxcalls.send(
        link, "BlindTransfer", pbxcalls.blind_transfer_headers(ch.name, context, exten)
    )
    uid = ch.uniqueid
    await link.wait_until(lambda: uid not in call.channels, SETTLE_S)


async def pick_up(
    link: PbxLink, call: Call, extension: str, view_id: str, dest: Destination
) -> None:
    ch = pbxcalls.ringing_channel(call, extension)
    if any(c in ch.name for c in ",&|()\\"):  # PickupChan's separators: one channel only
        raise ValueError(f"not a single channel name: {ch.name!r}")
    await pbxcalls.originate(
        link,
        dest.number,
        application="PickupChan",
        data=ch.name,
        caller_id=f"PickUp <{extension}>",
        timeout_s=PICKUP_RING_S,
        tag=f"PickUp|{call.id}|{view_id}",
    )
