"""The PUT action registry (api/actions.py, api/registry.py)."""

from __future__ import annotations

import json
from typing import get_args

import pytest

from pbx_bridge.api import validation
from pbx_bridge.api.actions import ActionRequest, ActionSpec, Registry
from pbx_bridge.api.registry import REGISTRY
from pbx_bridge.api.schemas import ActionName


def test_every_action_name_has_one_handler() -> None:
    assert sorted(REGISTRY) == sorted(get_args(ActionName))


def test_a_name_registered_twice_is_refused() -> None:
    async def nothing(_req: ActionRequest) -> None:
        return None

    with pytest.raises(ValueError, match="twice"):
        Registry([ActionSpec("X", nothing)], [ActionSpec("X", nothing)])


def test_the_recording_actions_take_format() -> None:
    for name in ("StartRecording", "StopRecording", "PauseRecording", "ResumeRecording"):
        action = validation.parse_action(
            json.dumps({"action": name, "format": "wav", "phoneCallViewId": "01"}).encode())
        assert REGISTRY.spec_for(action).name == name
