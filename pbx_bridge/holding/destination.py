"""`sendCallTo`: where UnPark may send a call (pure). An extension of the organization
of the view's extension; anything else (another tenant's extension, an unknown or public
number) is the same 400 `pc_sendcallto_invalid`, so a request learns nothing about other
tenants. Public numbers would need `allowPublicTransfer`, which PUT does not take."""

from __future__ import annotations

import re

from pbx_bridge.directory.models import Extension
from pbx_bridge.directory.store import Directory
from pbx_bridge.errors import ApiError
from pbx_bridge.holding.limits import NUMBER_PATTERN

__all__ = ["check_send_call_to"]

_NUMBER = re.compile(NUMBER_PATTERN)


def invalid() -> ApiError:
    return ApiError(400, "pc_sendcallto_invalid",
                    "sendCallTo must be an extension of the same organization")


def check_send_call_to(number: str, view_ext: Extension, directory: Directory) -> Extension:
    if _NUMBER.fullmatch(number) is None:
        raise invalid()
    target = directory.extension(number)
    if target is None:
        raise invalid()
    org, target_org = (directory.organization_of_extension(e) for e in (view_ext, target))
    if org is None or target_org is None or org.id != target_org.id:
        raise invalid()
    return target
