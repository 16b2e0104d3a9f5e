"""The PUT actions OnHold, OffHold, Park and UnPark (their rules and AMI side are
:mod:`pbx_bridge.holding`'s)."""

from __future__ import annotations

from pbx_bridge.api.actions import ActionRequest, ActionSpec
from pbx_bridge.holding.limits import MAX_IN_PARKING

__all__ = ["HOLDING_ACTIONS"]


async def _on_hold(req: ActionRequest) -> None:
    await req.node.holding.on_hold(req.call, req.extension)


async def _off_hold(req: ActionRequest) -> None:
    await req.node.holding.off_hold(req.call, req.extension)


async def _park(req: ActionRequest) -> None:
    seconds = req.action.body.maxInParking
    await req.node.holding.park(
        req.call, req.extension, int(seconds) if seconds else MAX_IN_PARKING[2]
    )


async def _unpark(req: ActionRequest) -> None:
    await req.node.holding.unpark(req.call, req.extension, req.action.body.sendCallTo or "")


HOLDING_ACTIONS = (
    ActionSpec("OnHold", _on_hold),
    ActionSpec("OffHold", _off_hold),
    ActionSpec("Park", _park, frozenset({"maxInParking"})),
    ActionSpec("UnPark", _unpark, frozenset({"sendCallTo"})),
)
