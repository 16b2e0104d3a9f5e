"""The mark a click-to-call leaves on the channel it originates (issue 14).

The bridge originates a call's first leg with ``PBX_CTC`` set on it (an ``Originate``
``Variable``), and manager.conf ``channelvars`` puts that variable on every event of the
channel, so what the API shows of a click-to-call (its ``nonce``, the numbers it joins)
is what Asterisk reports, after a bridge restart too, never a memory of the request.

Value: ``<call ref>|<source>|<destination>|<nonce>``. ``<call ref>`` is the Uniqueid the
bridge gave the channel (``ChannelId``), which is also the call's Linkedid: a tag whose
ref is not the Linkedid of the call it is seen in (a channel moved to another call by a
transfer) says nothing about that call. The parts never hold ``|`` (numbers and nonces
are checked by pbx_bridge/dialing/rules.py before they are written).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CTC_VAR", "CTC_VAR_HEADER", "CtcTag", "format_tag", "parse_tag"]

CTC_VAR = "PBX_CTC"
CTC_VAR_HEADER = f"ChanVariable({CTC_VAR})"


@dataclass(frozen=True, slots=True)
class CtcTag:
    call_ref: str
    source: str
    destination: str
    nonce: str  # "" when the request gave none


def format_tag(tag: CtcTag) -> str:
    return "|".join((tag.call_ref, tag.source, tag.destination, tag.nonce))


def parse_tag(value: str) -> CtcTag | None:
    """The tag, or None for an empty or malformed value."""
    parts = value.split("|")
    if len(parts) != 4 or not all(parts[:3]):
        return None
    return CtcTag(*parts)
