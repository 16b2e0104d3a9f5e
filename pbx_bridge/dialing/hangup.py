"""Which calls a DELETE hangs up, and which channels (pure)."""

from __future__ import annotations

from pbx_bridge.calls.tracker import Call, Channel

__all__ = ["channels_to_hang_up", "involves"]


def involves(call: Call, number: str) -> bool:
    """Does ``number`` take part in the call (the ``phoneNumber`` filter): a party's
    caller number, a number dialled, a local extension, or a click-to-call's ends?"""
    if number in (call.origin_num, call.origin_exten) or number in call.extensions():
        return True
    ctc = call.click_to_call()
    if ctc is not None and number in (ctc.source, ctc.destination):
        return True
    return any(number in (ch.caller_num, ch.exten) for ch in call.channels.values())


def channels_to_hang_up(call: Call, extension: str) -> list[Channel]:
    """The extension's own channels in the call: hanging them up ends its part (and a
    two-party call); other extensions' legs of a conference are not its to end."""
    return call.channels_of(extension)
