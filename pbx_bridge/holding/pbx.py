"""The AMI side of hold and park: what is sent to Asterisk, and how the bridge peer of a
channel is read from Asterisk itself. Shared with the capture scenarios, which drive the
very same actions. Every value reaching AMI here is a channel name Asterisk gave us, a
checked number, or one of the constants below.

OnHold: both parties are moved out of their bridge at once (a dual Redirect; moving one
alone would hang up the other) into [pbx-bridge-hold] (asterisk-conf/extensions.conf): the
held party runs MusicOnHold, the holder waits in silence. Each carries the other's channel
in PBX_HOLD_PEER and a hangup handler that hangs up that peer, so a hold never leaves a
party alone on the line. OffHold clears PBX_HOLD_PEER and bridges them again (AMI Bridge).

Park: AMI Park of the other party with the holder as TimeoutChannel: res_parking parks it
as the phone's own park would (the parker leaves the call) and, with comebacktoorigin, on
timeout rings the parker's device again. UnPark: a Redirect of the parked channel to the
number in the dial context.
"""

from __future__ import annotations

import asyncio

from pbx_bridge.core.pbx_errors import pbx_errors
from pbx_bridge.errors import PbxRefused, ViewState
from pbx_bridge.pbx.ami import AmiClient, Message, is_success

__all__ = [
    "HOLD_CONTEXT",
    "PEER_VAR",
    "bridge_peer",
    "park",
    "put_on_hold",
    "redirect",
    "take_off_hold",
]

HOLD_CONTEXT = "pbx-bridge-hold"  # asterisk-conf/extensions.conf
HELD_EXTEN, HOLDER_EXTEN, GONE_EXTEN = "held", "holder", "gone"
PEER_VAR = "PBX_HOLD_PEER"
_HANDLER = f"{HOLD_CONTEXT},{GONE_EXTEN},1"


async def _send(ami: AmiClient, action: str, headers: dict[str, str]) -> Message:
    with pbx_errors():
        return await ami.send_action(action, headers)


async def _must(ami: AmiClient, action: str, headers: dict[str, str]) -> Message:
    resp = await _send(ami, action, headers)
    if not is_success(resp):
        raise PbxRefused(f"{action}: {resp.get('Message', 'refused')}")
    return resp


async def bridge_peer(ami: AmiClient, channel: str) -> str:
    """The one other channel in ``channel``'s bridge, as Asterisk reports it (Status,
    then BridgeInfo). 409 when the channel is in no bridge or in one of more than two."""
    resp, items = await _list(ami, "Status", {"Channel": channel, "AllVariables": "false"})
    bridge = next((i.get("BridgeID", "") for i in items if i.get("Event") == "Status"), "")
    if not is_success(resp) or not bridge:
        raise ViewState("the view is not talking to anyone (on hold, parked or ringing?)")
    resp, items = await _list(ami, "BridgeInfo", {"BridgeUniqueid": bridge})
    names = [i.get("Channel", "") for i in items if i.get("Event") == "BridgeInfoChannel"]
    others = [n for n in names if n and n != channel]
    if len(others) != 1:
        raise ViewState("the view's call is not a two-party call")
    return others[0]


async def _list(
    ami: AmiClient, action: str, headers: dict[str, str]
) -> tuple[Message, list[Message]]:
    with pbx_errors():
        return await ami.send_list_action(action, headers)


async def put_on_hold(ami: AmiClient, holder: str, held: str) -> None:
    """OnHold: see the module's doc."""
    await asyncio.gather(
        *(_must(ami, "Setvar", {"Channel": a, "Variable": PEER_VAR, "Value": b})
          for a, b in ((holder, held), (held, holder))),
        *(_must(ami, "Setvar", {"Channel": a, "Variable": "CHANNEL(hangup_handler_push)",
                                "Value": _HANDLER})
          for a in (holder, held)),
    )
    await _must(ami, "Redirect", {
        "Channel": held, "Context": HOLD_CONTEXT, "Exten": HELD_EXTEN, "Priority": "1",
        "ExtraChannel": holder, "ExtraContext": HOLD_CONTEXT, "ExtraExten": HOLDER_EXTEN,
        "ExtraPriority": "1",
    })


async def held_peer(ami: AmiClient, holder: str) -> str:
    """The channel ``holder`` put on hold with OnHold (its PBX_HOLD_PEER), or ''."""
    resp = await _send(ami, "Getvar", {"Channel": holder, "Variable": PEER_VAR})
    return resp.get("Value", "") if is_success(resp) else ""


async def take_off_hold(ami: AmiClient, holder: str, held: str) -> None:
    """OffHold: see the module's doc."""
    await asyncio.gather(
        *(_must(ami, "Setvar", {"Channel": a, "Variable": PEER_VAR, "Value": ""})
          for a in (holder, held))
    )
    await _must(ami, "Bridge", {"Channel1": holder, "Channel2": held, "Tone": "no"})


async def park(ami: AmiClient, parkee: str, parker: str, seconds: int, lot: str) -> None:
    """Park ``parkee`` for ``seconds``; on timeout it rings ``parker``'s device."""
    await _must(ami, "Park", {
        "Channel": parkee, "TimeoutChannel": parker, "Timeout": str(seconds * 1000),
        "Parkinglot": lot,
    })


async def redirect(ami: AmiClient, channel: str, context: str, number: str) -> None:
    """Send ``channel`` to ``number`` in ``context`` (UnPark)."""
    await _must(ami, "Redirect",
                {"Channel": channel, "Context": context, "Exten": number, "Priority": "1"})
