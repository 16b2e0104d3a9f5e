"""Which ChanSpy options each action uses (pure). The spied channel is always the view's
own answered channel, named by its Uniqueid (``u``: no prefix matching, so no other
channel can ever be spied on), without a beep or a spoken channel name (``q``), and the
spy ends when that channel hangs up (``E``).

| action | options | who hears whom |
|---|---|---|
| BargeIn | ``B`` | the spy hears both parties and both parties hear the spy |
| Whisper, private 0 | ``w`` | the spy hears both; only the view's extension hears the spy |
| Whisper, private 1 | ``W`` | the spy hears nothing; only the view's extension hears it |
| Monitor | (none) | the spy hears both; nobody hears the spy |
"""

from __future__ import annotations

from typing import Literal

__all__ = ["SpyMode", "chanspy_data"]

SpyMode = Literal["BargeIn", "Whisper", "PrivateWhisper", "Monitor"]
_BASE = "qEu"
_MODE = {"BargeIn": "B", "Whisper": "w", "PrivateWhisper": "W", "Monitor": ""}


def chanspy_data(uniqueid: str, mode: SpyMode) -> str:
    """ChanSpy's argument: ``<uniqueid>,<options>``."""
    if not uniqueid or any(c in uniqueid for c in ",|()\\"):
        raise ValueError(f"not a channel uniqueid: {uniqueid!r}")
    return f"{uniqueid},{_BASE}{_MODE[mode]}"
