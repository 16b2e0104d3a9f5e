"""The PUT actions: action name -> the handler that runs it and the body fields it takes.

``put_call`` (:mod:`pbx_bridge.api.routes`) checks the request (auth, path, body, the
call, the view), then looks the action up here and runs its handler. A feature's actions
are declared next to its other API code as a tuple of :class:`ActionSpec` and joined in
:data:`pbx_bridge.api.registry.REGISTRY`: adding an action is one spec and one line
there, never another branch in the route. Every name of
:data:`pbx_bridge.api.schemas.ActionName` (the enum the OpenAPI document shows) has
exactly one spec (a unit test holds both lists equal).

``fields``: the PhoneCallAction fields the action takes besides ``action`` and
``phoneCallViewId``. A body giving a field its action does not take is refused
(``body_invalid``) rather than silently ignored, except ``format`` on the recording
actions, which the contract has always checked and then ignored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from aiohttp import web
from multidict import MultiMapping

from pbx_bridge.api.errors import ApiError
from pbx_bridge.api.validation import Action
from pbx_bridge.calls.tracker import Call
from pbx_bridge.directory.models import Extension, Principal
from pbx_bridge.nodes.node import PbxNode

__all__ = ["RECORDING_ACTIONS", "ActionRequest", "ActionSpec", "Registry"]


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """One checked PUT: who asks, on which call and which view's extension, with what."""

    app: web.Application
    principal: Principal
    call: Call
    extension: Extension
    action: Action
    query: MultiMapping[str]  # the PUT's query (call control: allowPublicTransfer)
    node: PbxNode  # the PBX node whose tracker holds the call: its features act


Handler = Callable[[ActionRequest], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ActionSpec:
    name: str
    handler: Handler
    fields: frozenset[str] = frozenset()
    """the PhoneCallAction fields it takes besides `action` and `phoneCallViewId`"""


_ALWAYS = frozenset({"action", "phoneCallViewId"})


class Registry(Mapping[str, ActionSpec]):
    """The actions by name; a name registered twice is a programming error."""

    def __init__(self, *groups: Iterable[ActionSpec]) -> None:
        self._specs: dict[str, ActionSpec] = {}
        for group in groups:
            for spec in group:
                if spec.name in self._specs:
                    raise ValueError(f"action {spec.name} registered twice")
                self._specs[spec.name] = spec

    def __getitem__(self, name: str) -> ActionSpec:
        return self._specs[name]

    def spec_for(self, action: Action) -> ActionSpec:
        """The spec of a parsed action, after refusing any field it does not take."""
        spec = self._specs[action.action]
        for name in sorted(action.given - spec.fields - _ALWAYS):
            raise ApiError(400, "body_invalid", f"{action.action} does not take {name!r}")
        return spec

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)


# --------------------------------------------------------------------------- recording


async def _start(req: ActionRequest) -> None:
    await req.node.recording.start(
        req.call, req.extension, req.action.format, app_id=req.principal.client_id
    )


async def _stop(req: ActionRequest) -> None:
    await req.node.recording.stop(req.call, req.extension)


async def _pause(req: ActionRequest) -> None:
    await req.node.recording.pause(req.call, req.extension)


async def _resume(req: ActionRequest) -> None:
    await req.node.recording.resume(req.call, req.extension)


# `format` is checked for every recording action (and then ignored but by StartRecording).
_FORMAT = frozenset({"format"})
RECORDING_ACTIONS = (
    ActionSpec("StartRecording", _start, _FORMAT),
    ActionSpec("StopRecording", _stop, _FORMAT),
    ActionSpec("PauseRecording", _pause, _FORMAT),
    ActionSpec("ResumeRecording", _resume, _FORMAT),
)
