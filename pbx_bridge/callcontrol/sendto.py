"""Where a call may be sent: the ``sendCallTo`` rule (CONTRACT section 8), pure.

``sendCallTo`` is an extension of the view's organization, or a public number only
when the request allows public transfers (``allowPublicTransfer=true``). A number with
``*`` or ``#`` is never public: it must be an extension of the directory. An extension of
another organization is refused exactly like an unknown one (same code and message).
The syntax (``^\\+?[0-9*#]{1,32}$``) is checked before, with the body
(:class:`pbx_bridge.api.schemas.PhoneCallAction`); it is checked again here, because
the number becomes an AMI header value and a dialplan extension.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from pbx_bridge.directory.models import Extension, Organization
from pbx_bridge.errors import PbxBridgeError

__all__ = ["Destination", "SendCallToInvalid", "resolve"]

_NUMBER = re.compile(r"\+?[0-9*#]{1,32}")
_PUBLIC = re.compile(r"\+?[0-9]{1,32}")


class SendCallToInvalid(PbxBridgeError):
    """400: ``sendCallTo`` is not a number this request may send the call to."""

    status = 400
    code = "pc_sendcallto_invalid"


@dataclass(frozen=True, slots=True)
class Destination:
    number: str  # what the dialplan is given: checked to match _NUMBER
    extension: Extension | None  # None: a public number


def resolve(
    number: str,
    organization: Organization | None,
    *,
    extension_of: Callable[[str], Extension | None],
    organization_of: Callable[[Extension], Organization | None],
    allow_public: bool,
    extension_only: bool = False,
) -> Destination:
    """The destination, or SendCallToInvalid. ``organization``: the view's."""
    if _NUMBER.fullmatch(number) is None:
        raise SendCallToInvalid("sendCallTo must be an extension or a phone number")
    ext = extension_of(number)
    if ext is not None:
        org = organization_of(ext)
        if organization is not None and org is not None and org.id == organization.id:
            return Destination(number, ext)
        raise _unknown_extension()
    if extension_only or _PUBLIC.fullmatch(number) is None:
        raise _unknown_extension()
    if not allow_public:
        raise SendCallToInvalid(
            "sendCallTo is not an extension of this organization; a public number needs "
            "allowPublicTransfer=true"
        )
    return Destination(number, None)


def _unknown_extension() -> SendCallToInvalid:
    return SendCallToInvalid("sendCallTo is not an extension of this organization")
