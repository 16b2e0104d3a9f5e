"""The UAPI PhoneCalls routes (CONTRACT section 2), under ``/uapi/phoneCalls`` and the
singular alias ``/uapi/phoneCall``.

Checks run in a fixed order, so that one request always gets the same error whatever
else is wrong with it, and a request learns nothing about what it may not see:

GET list   auth (401) -> path (user_invalid, extension_invalid, access_denied; another
           tenant's user or extension is user_invalid / extension_invalid like an
           unknown one) -> query (request_invalid: a control character, an unknown
           parameter, a bad sortOrder; then startindex_invalid, count_invalid,
           filterby_invalid, filterop_invalid, filtervalue_invalid, fields_invalid)
           -> ready (503) -> 200 / 204 (no call left after the filter)
GET one    auth -> path -> query (request_invalid, fields_invalid) -> phoneCallId
           syntax (pc_phonecall_invalid) -> ready (503) -> the call
           (pc_phonecall_invalid) -> 200
PUT        auth -> path -> query (request_invalid: any parameter but the token)
           -> Content-Type (415 unsupported_media_type) -> body (413 body_too_large,
           body_invalid, then each field's own code in the PhoneCallAction's order
           (validation.FIELD_ERRORS), then body_invalid for a field the action does not
           take (api/actions.py)) -> phoneCallId syntax
           -> ready (503) -> the call (pc_phonecall_invalid) -> the view
           (pc_phonecallview_invalid) -> policy (403 pc_recording_disabled:
           StartRecording, PauseRecording and ResumeRecording unless on demand by *1,
           StopRecording, PauseRecording and ResumeRecording on an extension that
           records always) -> the action (409, 503, 504) -> 200

The query parameters themselves (VoipNow's collection parameters) are
:mod:`pbx_bridge.api.collection`'s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from pbx_bridge.api import collection, validation
from pbx_bridge.api.actions import ActionRequest
from pbx_bridge.api.auth import authenticate
from pbx_bridge.api.context import DIRECTORY, NODES, SETTINGS
from pbx_bridge.api.errors import ApiError
from pbx_bridge.api.media import require_json
from pbx_bridge.api.registry import REGISTRY
from pbx_bridge.calls.tracker import Call
from pbx_bridge.core.link import PbxLink
from pbx_bridge.directory import access
from pbx_bridge.directory.models import Extension, Organization, Principal
from pbx_bridge.directory.store import Directory
from pbx_bridge.nodes.node import PbxNode

__all__ = ["BACKGROUND", "PREFIXES", "add_routes"]

log = logging.getLogger("pbx_bridge.api")

PREFIXES = ("/uapi/phoneCalls", "/uapi/phoneCall")
# `simple` and `callback` are click-to-call's own resources (POST, api/dialing.py), never an
# extension: excluded here so that their 405 advertises only POST. (aiohttp compiles the
# path into one regex; the look-ahead is two fixed words, nothing that can backtrack.)
LIST_PATH = "{prefix}/{{userId}}/{{extension:(?!(?:simple|callback)$)[^{{}}/]+}}"
ONE_PATH = "{prefix}/{{userId}}/{{extension}}/{{phoneCallId}}"

# Recording actions still running after their request gave up (504): kept referenced so
# they finish (and release the view's lock) instead of being garbage-collected.
BACKGROUND: web.AppKey[set[asyncio.Future[Any]]] = web.AppKey("background_actions")


# --------------------------------------------------------------------------- helpers


def _target(request: web.Request, principal: Principal) -> access.Target:
    directory = request.app[DIRECTORY]
    user_ref = validation.user_segment(request.match_info["userId"])
    extension_ref = validation.extension_segment(request.match_info["extension"])
    target = access.resolve_target(principal, user_ref, extension_ref, directory)
    validation.check_query(request.rel_url.query)
    return target


def _visible(principal: Principal, directory: Directory) -> Callable[[str], bool]:
    cache: dict[str, bool] = {}

    def visible(number: str) -> bool:
        if number not in cache:
            ext = directory.extension(number)
            cache[number] = ext is not None and access.can_act_on(principal, ext, directory)
        return cache[number]

    return visible


def _involves(call: Call, target: access.Target) -> bool:
    numbers = {e.number for e in target.extensions}
    return any(number in numbers for number in call.extensions())


def _request_extension(call: Call, target: access.Target) -> Extension:
    """The extension a PhoneCall is shown for: the path's, or with ``@self`` the first of
    the user's extensions in the call (in join order)."""
    if target.extension is not None:
        return target.extension
    mine = {e.number: e for e in target.extensions}
    for number in call.extensions():
        if number in mine:
            return mine[number]
    # The call ended meanwhile (after a StopRecording, say): its views remember who was in.
    for number, _vid in sorted(call.view_ids.items(), key=lambda kv: kv[1]):
        if number in mine:
            return mine[number]
    return target.extensions[0]


def _render(
    request: web.Request,
    principal: Principal,
    target: access.Target,
    call: Call,
    *,
    link: PbxLink,
    visible: Callable[[str], bool] | None = None,
    orgs: dict[str, Organization | None] | None = None,
):
    """One PhoneCall as JSON. A list passes one ``visible`` and one ``orgs`` memo for all
    its calls: one directory look-up per extension and request, not several per call."""
    directory = request.app[DIRECTORY]
    settings = request.app[SETTINGS]
    ext = _request_extension(call, target)
    if orgs is None:
        org = directory.organization_of_extension(ext)
    elif ext.number in orgs:
        org = orgs[ext.number]
    else:
        org = orgs[ext.number] = directory.organization_of_extension(ext)
    self_link = (
        f"{settings.http.public_base_url}/uapi/phoneCalls/{target.user.id}/{ext.number}/{call.id}"
    )
    return link.render(
        call,
        ext.number,
        visible=visible or _visible(principal, directory),
        owner_id=str(org.id) if org else None,
        owner_name=org.name if org else None,
        link=self_link,
    )


def _json(data: dict[str, Any]) -> web.Response:
    # orjson: the stdlib encoder was a fifth of a 500-call list (bench profile).
    return web.json_response(data, dumps=_dumps)


def _dumps(data: Any) -> str:
    return orjson.dumps(data).decode()


def _no_such_call() -> ApiError:
    return ApiError(
        400, "pc_phonecall_invalid", "no such live phone call for this user and extension"
    )


def _find_call(
    request: web.Request, target: access.Target, call_id: str
) -> tuple[PbxNode, Call]:
    """The call and the node whose tracker holds it (503: that node, or the target's
    own when no node has it, is not ready)."""
    node, call = request.app[NODES].find_call(call_id, target.extensions)
    if call is None or not _involves(call, target):
        raise _no_such_call()  # a foreign call is indistinguishable from a missing one
    return node, call


def _find_view(request: web.Request, principal: Principal, call: Call, view_id: str) -> Extension:
    """The extension of a view of the call the requester may act on. A view whose leg
    has hung up while the call goes on is still found: recording it is then 409
    (pc_phonecallview_state, "already hung up"), stopping it a no-op."""
    directory = request.app[DIRECTORY]
    number = PbxLink.view_extension(call, view_id)
    ext = directory.extension(number) if number is not None else None
    if ext is not None and access.can_act_on(principal, ext, directory):
        return ext
    raise ApiError(
        400, "pc_phonecallview_invalid", "no such view of this phone call that you may act on"
    )


async def _run_action(request: web.Request, coro: Awaitable[None]) -> None:
    """Run an action, giving up waiting after ``http.request_timeout`` (504).

    The action itself is shielded: it always runs to its end (and so releases the view's
    lock and keeps the bridge's bookkeeping right), even if the client went away.
    """
    timeout = request.app[SETTINGS].http.request_timeout
    task = asyncio.ensure_future(coro)
    background = request.app[BACKGROUND]
    background.add(task)
    task.add_done_callback(_forget(background))
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        raise ApiError(504, "pbx_timeout", "the PBX did not answer in time")
    task.result()


def _forget(background: set) -> Callable[[asyncio.Future], None]:
    def done(task: asyncio.Future) -> None:
        background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Retrieved here so that an abandoned task's error is not reported as
            # "never retrieved"; the request that waited for it has answered already.
            log.debug("recording action ended with %r", task.exception())

    return done


# --------------------------------------------------------------------------- handlers


async def list_calls(request: web.Request) -> web.StreamResponse:
    directory = request.app[DIRECTORY]
    nodes = request.app[NODES]
    principal = authenticate(request, directory)
    target = _target(request, principal)
    query = collection.parse_list_query(request.rel_url.query)
    calls = nodes.calls_for(target.extensions)  # 503: one of their nodes is not ready
    total, window = collection.select(query, calls, _call_id, _published)
    if not total:
        return web.Response(status=204)
    visible = _visible(principal, directory)
    orgs: dict[str, Organization | None] = {}
    entries = [
        collection.project(
            _render(request, principal, target, call, link=nodes.link_of(call),
                    visible=visible, orgs=orgs),
            query.fields,
        )
        for call in window
    ]
    return _json(
        {
            "startIndex": query.start_index,
            "itemsPerPage": len(entries),
            "totalResults": total,
            "entry": entries,
        }
    )


def _call_id(call: Call) -> str:
    return call.id


def _published(call: Call) -> float | None:
    return call.published


async def get_call(request: web.Request) -> web.StreamResponse:
    directory = request.app[DIRECTORY]
    principal = authenticate(request, directory)
    target = _target(request, principal)
    fields = collection.parse_one_query(request.rel_url.query)
    call_id = validation.phone_call_id(request.match_info["phoneCallId"])
    node, call = _find_call(request, target, call_id)  # 503 first: the node's readiness
    return _json(collection.project(
        _render(request, principal, target, call, link=node.link), fields))


async def put_call(request: web.Request) -> web.StreamResponse:
    directory = request.app[DIRECTORY]
    settings = request.app[SETTINGS]
    principal = authenticate(request, directory)
    target = _target(request, principal)
    collection.check_put_query(request.rel_url.query)
    require_json(request)  # 415
    raw = await validation.read_body(request, settings.http.request_timeout)  # 408, 413
    action = validation.parse_action(raw)
    spec = REGISTRY.spec_for(action)  # body_invalid: a field the action does not take
    call_id = validation.phone_call_id(request.match_info["phoneCallId"])
    node, call = _find_call(request, target, call_id)  # 503 first: the node's readiness
    ext = _find_view(request, principal, call, action.view_id)
    # Each action's own rules (the recording rules: 403 pc_recording_disabled) are checked
    # first, in its feature.
    await _run_action(
        request, spec.handler(ActionRequest(request.app, principal, call, ext, action,
                                   request.rel_url.query, node))
    )
    return _json(_render(request, principal, target, call, link=node.link))


# --------------------------------------------------------------------------- registration


def add_routes(app: web.Application) -> None:
    app[BACKGROUND] = set()
    for prefix in PREFIXES:
        name = prefix.rsplit("/", 1)[-1]
        listing = app.router.add_resource(LIST_PATH.format(prefix=prefix), name=f"{name}.list")
        listing.add_route("GET", list_calls)
        one = app.router.add_resource(ONE_PATH.format(prefix=prefix), name=f"{name}.one")
        one.add_route("GET", get_call)
        one.add_route("PUT", put_call)
