"""The body of ``POST /uapi/phoneCalls/{userId}/simple|callback`` (CONTRACT section 8),
written once: the OpenAPI document's schema is generated from it, and
:func:`pbx_bridge.dialing.rules.parse_request` validates bodies with it.

Patterns are checked by pydantic's Rust regex engine (linear time, no backtracking);
types are strict (a number is not a string), unknown keys refused.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "NONCE_PATTERN",
    "NUMBER_PATTERN",
    "CallLeg",
    "DialRequest",
    "HungUp",
]

# Extension numbers (<org code>*<local>) and public numbers: digits, at most one "*".
NUMBER_PATTERN = r"^(?:[0-9]{1,8}\*[0-9]{1,8}|[0-9]{1,20})$"
NONCE_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"

Number = Annotated[str, StringConstraints(strict=True, pattern=NUMBER_PATTERN)]


class _Closed(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, use_attribute_docstrings=True
    )


class CallLeg(_Closed):
    """Who is called (one view of the new call)."""

    source: Annotated[list[Number], Field(min_length=1, max_length=1)] | None = None
    """`simple`: the extension itself (the default); `callback`: the number called first
    (an extension of the same organization, or a public number with
    `allowPublicTransfer=true`); default the extension"""
    destination: Annotated[list[Number], Field(min_length=1, max_length=1)]
    """the number dialled once the first leg answered: an extension of the same
    organization, or a public number with `allowPublicTransfer=true`"""
    callerId: Annotated[str, StringConstraints(strict=True, max_length=100)] | None = None
    """`Name <number>` shown to both parties: a name of letters, digits, spaces and
    `.,'_-` (at most 64), the number an extension of the same organization; default
    `<source>`"""


class DialRequest(_Closed):
    """A call to place: a PhoneCall with one view."""

    extension: Annotated[str, StringConstraints(strict=True, max_length=64)]
    """the extension the call is placed for (the path's user must own it)"""
    nonce: Annotated[str, StringConstraints(strict=True, pattern=NONCE_PATTERN)] | None = None
    """echoed as the new PhoneCall's `nonce` (1-64 of `A-Z a-z 0-9 . _ : -`)"""
    phoneCallView: Annotated[list[CallLeg], Field(min_length=1, max_length=1)]
    """exactly one"""


class HungUp(_Closed):
    """The calls a DELETE hung up (Asterisk confirmed each hang-up)."""

    hungUp: list[str]
    """their PhoneCall ids"""
