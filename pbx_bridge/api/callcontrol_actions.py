"""The call-control PUT actions of pbx_bridge/callcontrol/ (Transfer, TransferToVoicemail,
PickUp, BargeIn, Whisper, Monitor), each with the body fields it takes.

:data:`CALLCONTROL_ACTIONS` are their specs for the PUT action registry
(:mod:`pbx_bridge.api.registry`); each handler checks what the body and the query bring
against the view, in the order below, then runs the action (``put_call`` runs it under
the request timeout, like the recording actions):

1. a field the action does not take (400 ``body_invalid``, the registry's check), a
   missing ``sendCallTo`` (400 ``pc_sendcallto_invalid``);
2. ``allowPublicTransfer`` (``true``/``false``/``1``/``0``, once; else 400
   ``request_invalid``);
3. ``sendCallTo`` against the view's organization (:mod:`pbx_bridge.callcontrol.sendto`:
   400 ``pc_sendcallto_invalid``; another organization's extension answers as an unknown
   one);
4. the view's state, then the PBX (409, 503, 504): the action's own module.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from multidict import MultiMapping

from pbx_bridge.api.actions import ActionRequest, ActionSpec
from pbx_bridge.api.collection import ALLOW_PUBLIC_PARAM
from pbx_bridge.api.context import DIRECTORY
from pbx_bridge.api.errors import ApiError
from pbx_bridge.api.validation import Action
from pbx_bridge.callcontrol import sendto
from pbx_bridge.callcontrol.spying import actions as spying
from pbx_bridge.callcontrol.transfer import actions as transfer
from pbx_bridge.calls.tracker import Call
from pbx_bridge.core.link import PbxLink

__all__ = ["CALLCONTROL_ACTIONS", "SPECS", "Job", "Spec"]

_TRUE, _FALSE = ("true", "1"), ("false", "0")


@dataclass(frozen=True, slots=True)
class Job:
    """One checked action, ready to run against the PBX."""

    link: PbxLink
    call: Call
    extension: str  # the view's extension number
    view_id: str
    dest: sendto.Destination
    action: Action


Runner = Callable[[Job], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class Spec:
    fields: frozenset[str]  # the call-control fields the action takes
    run: Runner
    extension_only: bool = False  # sendCallTo must be an extension (voicemail)


async def _transfer(job: Job) -> None:
    await transfer.transfer(job.link, job.call, job.extension, job.dest)


async def _voicemail(job: Job) -> None:
    await transfer.transfer_to_voicemail(job.link, job.call, job.extension, job.dest)


async def _pick_up(job: Job) -> None:
    await transfer.pick_up(job.link, job.call, job.extension, job.view_id, job.dest)


async def _barge_in(job: Job) -> None:
    wait = int(job.action.wait_for_pickup or spying.DEFAULT_WAIT_S)  # schema: 1-300
    await spying.spy(job.link, job.call, job.extension, job.view_id, job.dest, "BargeIn",
                     caller_id=job.action.caller_id, wait_s=wait)


async def _whisper(job: Job) -> None:
    mode: spying.SpyMode = "PrivateWhisper" if job.action.private == "1" else "Whisper"
    await spying.spy(job.link, job.call, job.extension, job.view_id, job.dest, mode)


async def _monitor(job: Job) -> None:
    await spying.spy(job.link, job.call, job.extension, job.view_id, job.dest, "Monitor")


_SEND = frozenset({"sendCallTo"})
SPECS: dict[str, Spec] = {
    "Transfer": Spec(_SEND, _transfer),
    "TransferToVoicemail": Spec(_SEND, _voicemail, extension_only=True),
    "PickUp": Spec(_SEND, _pick_up),
    "BargeIn": Spec(_SEND | {"callerId", "waitForPickup"}, _barge_in),
    "Whisper": Spec(_SEND | {"private"}, _whisper),
    "Monitor": Spec(_SEND, _monitor),
}


def allow_public_transfer(query: MultiMapping[str]) -> bool:
    values = query.getall(ALLOW_PUBLIC_PARAM, [])
    if not values:
        return False
    if len(values) == 1 and values[0] in _TRUE + _FALSE:
        return values[0] in _TRUE
    raise ApiError(400, "request_invalid", f"{ALLOW_PUBLIC_PARAM} must be true or false, once")


async def _run(name: str, req: ActionRequest) -> None:
    """The checked action, run (see the module's order; fields the action does not take
    were refused by the registry)."""
    spec, action, view = SPECS[name], req.action, req.extension
    if action.send_call_to is None:
        raise sendto.SendCallToInvalid(f"{action.action} needs sendCallTo")
    allow_public = allow_public_transfer(req.query)
    directory = req.app[DIRECTORY]
    dest = sendto.resolve(
        action.send_call_to,
        directory.organization_of_extension(view),
        extension_of=directory.extension,
        organization_of=directory.organization_of_extension,
        allow_public=allow_public,
        extension_only=spec.extension_only,
    )
    await spec.run(Job(req.node.link, req.call, view.number, action.view_id, dest, action))


def _handler(name: str) -> Callable[[ActionRequest], Coroutine[Any, Any, None]]:
    async def handle(req: ActionRequest) -> None:
        await _run(name, req)
    return handle


CALLCONTROL_ACTIONS = tuple(
    ActionSpec(name, _handler(name), spec.fields) for name, spec in SPECS.items()
)
