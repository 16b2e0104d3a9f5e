"""What call control asks of the PBX, and how its answers become errors.

- The view's channel: the extension's own (non-Local) channel in the call, answered
  (``Up``) for transfers and spying, ringing for a pickup; otherwise 409
  ``pc_phonecallview_state`` (:class:`ViewState`). The state is the tracker's, i.e.
  Asterisk's own events.
- AMI: an action Asterisk refuses is 409 (:class:`PbxRefused`, its message kept), a lost
  link 503, no answer in time 504.
- Originate is always ``Async: true`` (a blocking Originate holds the AMI link's answer
  until the call is answered) and carries ``PBX_CC=<action>|<call id>|<view id>`` so the
  originated call can be told apart in the event stream and in Asterisk's channel list.
"""

from __future__ import annotations

from collections.abc import Mapping

from pbx_bridge.calls.tracker import STATE_UP, Call, Channel, is_local_half
from pbx_bridge.core.link import PbxLink
from pbx_bridge.core.pbx_errors import pbx_errors
from pbx_bridge.errors import PbxRefused, ViewState
from pbx_bridge.pbx.ami import Message, is_success

__all__ = [
    "CC_VARIABLE",
    "DIAL_CONTEXT",
    "STATE_RINGING",
    "VOICEMAIL_CONTEXT",
    "answered_channel",
    "blind_transfer_headers",
    "originate",
    "originate_headers",
    "ringing_channel",
    "send",
]

DIAL_CONTEXT = "pbx-bridge-dial"  # asterisk-conf/extensions.conf
VOICEMAIL_CONTEXT = "pbx-bridge-voicemail"
CC_VARIABLE = "PBX_CC"
STATE_RINGING = 5  # AST_STATE_RINGING: the phone of this channel rings


def _own(call: Call, extension: str) -> list[Channel]:
    return [c for c in call.channels_of(extension) if not is_local_half(c.name)]


def answered_channel(call: Call, extension: str) -> Channel:
    """The view's answered channel, or 409."""
    for ch in _own(call, extension):
        if ch.state == STATE_UP:
            return ch
    raise ViewState("the view is not on an answered call")


def ringing_channel(call: Call, extension: str) -> Channel:
    """The view's ringing channel (its phone rings), or 409."""
    for ch in _own(call, extension):
        if ch.state == STATE_RINGING:
            return ch
    raise ViewState("the view is not ringing")


async def send(link: PbxLink, action: str, headers: Mapping[str, str]) -> Message:
    """One AMI action; Asterisk's refusal is 409 with its own message."""
    with pbx_errors():
        resp = await link.ami.send_action(action, dict(headers))
    if not is_success(resp):
        raise PbxRefused(f"{action}: {resp.get('Message', 'refused by the PBX')}")
    return resp


def blind_transfer_headers(channel: str, context: str, exten: str) -> dict[str, str]:
    """AMI BlindTransfer: ``channel``'s bridge peer goes to ``exten@context``."""
    return {"Channel": channel, "Context": context, "Exten": exten}


def originate_headers(
    number: str, *, application: str, data: str, caller_id: str, timeout_s: int, tag: str
) -> dict[str, str]:
    """AMI Originate (Async) of ``number`` through the dial context, running
    ``application(data)`` once answered. (Also what tests/support/scenarios.py sends.)"""
    return {
        "Channel": f"Local/{number}@{DIAL_CONTEXT}",
        "Application": application,
        "Data": data,
        "CallerID": caller_id,
        "Timeout": str(timeout_s * 1000),
        "Async": "true",
        "Variable": f"{CC_VARIABLE}={tag}",
    }


async def originate(
    link: PbxLink,
    number: str,
    *,
    application: str,
    data: str,
    caller_id: str,
    timeout_s: int,
    tag: str,
) -> None:
    """Call ``number`` through the dial context; once answered it runs ``application``.
    Returns when Asterisk has queued the call (Async), not when it is answered."""
    headers = originate_headers(
        number,
        application=application,
        data=data,
        caller_id=caller_id,
        timeout_s=timeout_s,
        tag=tag,
    )
    await send(link, "Originate", headers)
