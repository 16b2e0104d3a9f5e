"""The click-to-call and hang-up routes (CONTRACT section 8; issue 14 items 1 and 2).
The rules are pbx_bridge/dialing/'s; this module is the HTTP side only.

Checks run in a fixed order:

POST   auth (401) -> path userId syntax (user_invalid) -> query (request_invalid: a
       control character or an unknown parameter; pc_waitforpickup_invalid,
       pc_callduration_invalid, pc_allowpublictransfer_invalid) -> Content-Type (415)
       -> body (413, body_invalid, pc_nonce_invalid, extension_invalid,
       pc_source_invalid, pc_destination_invalid, pc_callerid_invalid: syntax) -> the
       user and extension (user_invalid, extension_invalid, access_denied, as a GET's
       path) -> the numbers (pc_source_invalid, pc_destination_invalid,
       pc_callerid_invalid: who may be dialled) -> ready (503) -> Originate (409
       pc_call_failed, 504) -> 201 with the new PhoneCall and its Location
DELETE auth -> path (as a GET's) -> query (request_invalid; pc_phonenumber_invalid)
       -> phoneCallId syntax -> ready (503) -> the call (pc_phonecall_invalid) ->
       Hangup -> 200 {"hungUp": [...]} once Asterisk confirmed, or 204
"""

from __future__ import annotations

from aiohttp import web

from pbx_bridge.api import validation
from pbx_bridge.api.auth import authenticate
from pbx_bridge.api.context import DIRECTORY, NODES, SETTINGS
from pbx_bridge.api.errors import ApiError
from pbx_bridge.api.media import require_json
from pbx_bridge.api.routes import LIST_PATH, ONE_PATH, PREFIXES, _find_call, _json, _render
from pbx_bridge.dialing import rules
from pbx_bridge.dialing.hangup import involves
from pbx_bridge.directory import access

__all__ = ["DIAL_PATH", "add_dialing_routes"]

DIAL_PATH = "{prefix}/{{userId}}/{mode}"
PHONE_NUMBER = "phoneNumber"
_DELETE_PARAMS = (PHONE_NUMBER, "accessRequestToken")
_NUMBER_CHARS = frozenset("0123456789*")


async def _place(request: web.Request, mode: rules.Mode) -> web.StreamResponse:
    directory = request.app[DIRECTORY]
    settings = request.app[SETTINGS]
    principal = authenticate(request, directory)
    user_ref = validation.user_segment(request.match_info["userId"])
    validation.check_query(request.rel_url.query)
    query = rules.parse_query(request.rel_url.query)
    require_json(request)  # 415
    raw = await validation.read_body(request, settings.http.request_timeout)  # 408, 413
    body = rules.parse_request(raw)
    target = access.resolve_target(
        principal, user_ref, validation.extension_segment(body.extension), directory)
    if target.extension is None:  # "@self" names no extension to call from
        raise access.ExtensionInvalid(access.NO_SUCH_EXTENSION)
    nodes = request.app[NODES]
    node = nodes.home(target.extension.node)  # the call starts on the extension's node
    plan = node.dialing.plan(mode, body, query, target.extension)
    if not nodes.single:
        nodes.require_ready(node)  # also its systemname (the one node: place() checks)
    call_id = await node.dialing.place(plan)
    location = (f"{settings.http.public_base_url}/uapi/phoneCalls/{target.user.id}/"
                f"{target.extension.number}/{call_id}")
    call = node.link.call(call_id)
    if call is not None:
        shown = _render(request, principal, target, call, link=node.link)
    else:  # Asterisk has not shown its channel yet: what is known for sure
        shown = {"id": call_id, "extension": target.extension.number, "phoneCallView": [],
                 "link": {"self": location}}
    response = _json(shown)
    response.set_status(201)
    response.headers["Location"] = location
    return response


async def place_simple(request: web.Request) -> web.StreamResponse:
    return await _place(request, "simple")


async def place_callback(request: web.Request) -> web.StreamResponse:
    return await _place(request, "callback")


def _phone_number(request: web.Request) -> str | None:
    query = request.rel_url.query
    for name in query:
        if name not in _DELETE_PARAMS:
            raise ApiError(400, "request_invalid", "unknown query parameter; this resource "
                           "takes " + ", ".join(_DELETE_PARAMS))
    values = query.getall(PHONE_NUMBER, [])
    if not values:
        return None
    number = values[0]
    if len(values) > 1 or not 1 <= len(number) <= 20 or not set(number) <= _NUMBER_CHARS:
        raise ApiError(400, "pc_phonenumber_invalid",
                       "phoneNumber must be one number: digits and '*', at most 20")
    return number


async def hang_up(request: web.Request) -> web.StreamResponse:
    directory = request.app[DIRECTORY]
    nodes = request.app[NODES]
    principal = authenticate(request, directory)
    user_ref = validation.user_segment(request.match_info["userId"])
    extension_ref = validation.extension_segment(request.match_info["extension"])
    target = access.resolve_target(principal, user_ref, extension_ref, directory)
    validation.check_query(request.rel_url.query)
    number = _phone_number(request)
    raw_id = request.match_info.get("phoneCallId")
    call_id = validation.phone_call_id(raw_id) if raw_id is not None else None
    if call_id is not None:
        node, call = _find_call(request, target, call_id)
        by_node = [(node, [call])]
    else:
        numbers = [e.number for e in target.extensions]
        homes = nodes.homes(target.extensions)
        for node in homes:
            nodes.require_ready(node)
        by_node = [(node, node.link.calls_for(numbers)) for node in homes]
    if number is not None:
        by_node = [(node, [c for c in calls if involves(c, number)]) for node, calls in by_node]
    by_node = [(node, calls) for node, calls in by_node if calls]
    if not by_node:
        return web.Response(status=204)
    extensions = {e.number for e in target.extensions}
    hung_up = [call_id for node, calls in by_node
               for call_id in await node.dialing.hang_up(calls, extensions)]
    if not hung_up:
        return web.Response(status=204)
    return _json({"hungUp": hung_up})


def add_dialing_routes(app: web.Application) -> None:
    for prefix in PREFIXES:
        name = prefix.rsplit("/", 1)[-1]
        for mode, handler in (("simple", place_simple), ("callback", place_callback)):
            resource = app.router.add_resource(DIAL_PATH.format(prefix=prefix, mode=mode),
                                               name=f"{name}.{mode}")
            resource.add_route("POST", handler)
        for path in (LIST_PATH, ONE_PATH):
            app.router.add_resource(path.format(prefix=prefix)).add_route("DELETE", hang_up)
