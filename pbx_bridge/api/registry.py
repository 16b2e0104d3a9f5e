"""Every PUT action the API runs, joined from each feature's specs (see
:mod:`pbx_bridge.api.actions`). One line per feature: merges stay one-line."""

from __future__ import annotations

from pbx_bridge.api.actions import RECORDING_ACTIONS, Registry
from pbx_bridge.api.callcontrol_actions import CALLCONTROL_ACTIONS
from pbx_bridge.api.holding import HOLDING_ACTIONS

__all__ = ["REGISTRY"]

REGISTRY = Registry(
    RECORDING_ACTIONS,
    HOLDING_ACTIONS,
    CALLCONTROL_ACTIONS,
)
