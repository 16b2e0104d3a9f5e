"""The values the hold and park actions take (pure; the PhoneCallAction model uses them)."""

from __future__ import annotations

__all__ = ["MAX_IN_PARKING", "NUMBER_PATTERN"]

MAX_IN_PARKING = (10, 3600, 180)  # min, max, default seconds (the contract's)
# sendCallTo: digits and '*' only (extension numbers are <org>*<local>), bounded: never
# a dialplan pattern, channel or AMI header character.
NUMBER_PATTERN = r"^[0-9*]{1,32}$"
