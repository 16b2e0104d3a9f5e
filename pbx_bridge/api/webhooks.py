"""Webhook subscriptions (CONTRACT section 7, "Subscriptions"): VoipNow's Call Events
on an extension, ``/uapi/extensions/{userId}/{extension}/phoneCallEvents[/{id}]``, and
ours for a whole organization, ``/uapi/organizations/{organizationId}/phoneCallEvents
[/{id}]`` (organization and admin contexts). Same auth, contexts and access rules as
the PhoneCalls routes; an unknown or foreign subscription id is 400
``subscription_invalid``, one answer for both.

Order: auth (401) -> path (user_invalid, extension_invalid, organization_invalid,
access_denied) -> query -> id (subscription_invalid) -> body (body_invalid, url_invalid,
event_type_invalid) -> the answer. POST answers 201 with the ``secret`` (shown once).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import replace
from typing import Any

import orjson
from aiohttp import web
from multidict import MultiDict
from yarl import URL

from pbx_bridge.api import collection, validation
from pbx_bridge.api.auth import authenticate
from pbx_bridge.api.context import DIRECTORY, SETTINGS, WEBHOOKS
from pbx_bridge.api.errors import ApiError
from pbx_bridge.api.media import require_json
from pbx_bridge.calls.model import iso
from pbx_bridge.directory import access
from pbx_bridge.directory.access import AccessDenied
from pbx_bridge.directory.models import Principal
from pbx_bridge.events.model import EVENT_TYPES
from pbx_bridge.webhooks.guard import AddressRefused
from pbx_bridge.webhooks.signing import new_secret
from pbx_bridge.webhooks.subscriptions import Subscription, new_id

__all__ = ["add_webhook_routes"]

_ID = re.compile(r"sub-[0-9a-f]{16}")
_ORG_ID = re.compile(r"[1-9][0-9]{0,9}")
_URL_MAX = 2048
_FIELDS = ("url", "method", "types", "active")


class _Scope:
    """Whose subscriptions a path names: one extension, or an organization's own."""

    def __init__(self, organization: int, extension: str | None, link: str) -> None:
        self.organization = organization
        self.extension = extension
        self.link = link


def _extension_scope(request: web.Request, principal: Principal) -> _Scope:
    directory = request.app[DIRECTORY]
    user_ref = validation.user_segment(request.match_info["userId"])
    ext_ref = validation.extension_segment(request.match_info["extension"])
    if ext_ref == access.SELF:
        raise ApiError(400, "extension_invalid", "Call Events belong to one extension, not @self")
    target = access.resolve_target(principal, user_ref, ext_ref, directory)
    ext = target.extensions[0]
    org = directory.organization_of_extension(ext)
    if org is None:
        raise ApiError(400, "extension_invalid", access.NO_SUCH_EXTENSION)
    base = request.app[SETTINGS].http.public_base_url
    return _Scope(org.id, ext.number,
                  f"{base}/uapi/extensions/{target.user.id}/{ext.number}/phoneCallEvents")


def _organization_scope(request: web.Request, principal: Principal) -> _Scope:
    raw = request.match_info["organizationId"]
    org_id = principal.organization_id if raw == "@me" else (
        int(raw) if _ORG_ID.fullmatch(raw) else None)
    org = request.app[DIRECTORY].organization(org_id) if org_id is not None else None
    if org is None or (principal.role != "admin" and principal.organization_id != org.id):
        raise ApiError(400, "organization_invalid", "no such organization")
    if principal.role not in ("admin", "organization"):
        raise AccessDenied("organization subscriptions need an organization or admin token")
    base = request.app[SETTINGS].http.public_base_url
    return _Scope(org.id, None, f"{base}/uapi/organizations/{org.id}/phoneCallEvents")


def _scope(request: web.Request, *, listing: bool = False) -> _Scope:
    principal = authenticate(request, request.app[DIRECTORY])
    if "organizationId" in request.match_info:
        scope = _organization_scope(request, principal)
    else:
        scope = _extension_scope(request, principal)
    query = request.rel_url.query
    validation.check_query(query)
    allowed = ("startIndex", "count", collection.TOKEN_PARAM) if listing else (
        collection.TOKEN_PARAM,)
    for name in query:
        if name not in allowed:
            raise ApiError(400, "request_invalid", f"unknown query parameter {name[:40]!r}")
    return scope


def render(scope: _Scope, sub: Subscription, *, secret: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": sub.id, "url": sub.url, "method": sub.method, "types": list(sub.types),
        "active": sub.active, "ownerId": str(sub.organization), "created": iso(sub.created),
        "link": {"self": f"{scope.link}/{sub.id}"},
    }
    if sub.extension is not None:
        out["extension"] = sub.extension
    if secret:
        out["secret"] = sub.secret
    return out


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def _current(request: web.Request) -> None:
    """On replicas the subscriptions may have changed through another one: read them
    again (one query; subscription requests are rare)."""
    store = request.app[WEBHOOKS].subscriptions
    if store.shared:
        await asyncio.to_thread(store.reload)


def _find(request: web.Request, scope: _Scope) -> Subscription:
    raw = request.match_info["subscriptionId"]
    sub = request.app[WEBHOOKS].subscriptions.cached(raw) if _ID.fullmatch(raw) else None
    if sub is None or sub.organization != scope.organization or sub.extension != scope.extension:
        raise ApiError(400, "subscription_invalid", "no such subscription")
    return sub


# --------------------------------------------------------------------------- body


def _body_invalid(message: str) -> ApiError:
    return ApiError(400, "body_invalid", message)


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _body_invalid("a key appears more than once")
        out[key] = value
    return out


async def _body(request: web.Request) -> dict[str, Any]:
    require_json(request)
    raw = await validation.read_body(request, request.app[SETTINGS].http.request_timeout)
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_pairs)
    except (UnicodeDecodeError, ValueError):
        raise _body_invalid("the body is not a UTF-8 JSON object") from None
    if not isinstance(data, dict):
        raise _body_invalid("the body is not a JSON object")
    unknown = [k for k in data if k not in _FIELDS]
    if unknown:
        raise _body_invalid(f"unknown field {unknown[0][:40]!r}")
    return data


async def _url(request: web.Request, value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > _URL_MAX or \
            validation.has_control(value):
        raise ApiError(400, "url_invalid", "url must be an absolute http or https URL")
    try:
        url = URL(value)
    except ValueError:
        url = URL()
    if url.scheme not in ("http", "https") or not url.host or url.fragment:
        raise ApiError(400, "url_invalid", "url must be an absolute http or https URL")
    try:
        await request.app[WEBHOOKS].sender.guard.check_host(url.host, url.port or 443)
    except AddressRefused:
        raise ApiError(400, "url_invalid",
                       "url's host is on a refused address range or does not resolve") from None
    return value


def _types(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
        raise ApiError(400, "event_type_invalid", "types is a non-empty list of event types")
    bad = [t for t in value if t not in EVENT_TYPES]
    if bad:
        raise ApiError(400, "event_type_invalid", f"unknown event type {bad[0][:40]!r}")
    return tuple(dict.fromkeys(value))


async def _apply(request: web.Request, sub: Subscription, data: dict[str, Any]) -> Subscription:
    if "method" in data and data["method"] not in ("GET", "POST"):
        raise _body_invalid("method is GET or POST")
    if "active" in data and not isinstance(data["active"], bool):
        raise _body_invalid("active is true or false")
    return replace(
        sub,
        url=await _url(request, data["url"]) if "url" in data else sub.url,
        method=data.get("method", sub.method),
        types=_types(data["types"]) if "types" in data else sub.types,
        active=data.get("active", sub.active),
    )


# --------------------------------------------------------------------------- handlers


async def list_subscriptions(request: web.Request) -> web.StreamResponse:
    scope = _scope(request, listing=True)
    query = request.rel_url.query
    start = collection.parse_list_query(MultiDict(
        (k, v) for k, v in query.items() if k in ("startIndex", "count")))
    await _current(request)
    subs = request.app[WEBHOOKS].subscriptions.of(scope.organization, scope.extension)
    window = subs[start.start_index:start.start_index + start.count]
    if not window:
        return web.Response(status=204)
    entries = [render(scope, s) for s in window]
    return _json({"startIndex": start.start_index, "itemsPerPage": len(entries),
                  "totalResults": len(subs), "entry": entries})


async def create_subscription(request: web.Request) -> web.StreamResponse:
    scope = _scope(request)
    data = await _body(request)
    if "url" not in data:
        raise ApiError(400, "url_invalid", "url is required")
    blank = Subscription(id=new_id(), organization=scope.organization,
                         extension=scope.extension, url="", method="POST", types=EVENT_TYPES,
                         active=True, secret=new_secret(), created=time.time())
    sub = await _apply(request, blank, data)
    await asyncio.to_thread(request.app[WEBHOOKS].subscriptions.add, sub)
    out = render(scope, sub, secret=True)
    return web.Response(body=orjson.dumps(out), status=201, content_type="application/json",
                        headers={"Location": out["link"]["self"]})


async def get_subscription(request: web.Request) -> web.StreamResponse:
    scope = _scope(request)
    await _current(request)
    return _json(render(scope, _find(request, scope)))


async def put_subscription(request: web.Request) -> web.StreamResponse:
    scope = _scope(request)
    await _current(request)
    sub = _find(request, scope)
    sub = await _apply(request, sub, await _body(request))
    await asyncio.to_thread(request.app[WEBHOOKS].subscriptions.replace, sub)
    if sub.active:
        request.app[WEBHOOKS].sender.wake([sub.id])
    return _json(render(scope, sub))


async def delete_subscription(request: web.Request) -> web.StreamResponse:
    scope = _scope(request)
    await _current(request)
    sub = _find(request, scope)
    await asyncio.to_thread(request.app[WEBHOOKS].subscriptions.remove, sub.id)
    return web.Response(status=204)


def add_webhook_routes(app: web.Application) -> None:
    for prefix, name in (("/uapi/extensions/{userId}/{extension}/phoneCallEvents", "pce"),
                         ("/uapi/organizations/{organizationId}/phoneCallEvents", "orgpce")):
        listing = app.router.add_resource(prefix, name=f"{name}.list")
        listing.add_route("GET", list_subscriptions)
        listing.add_route("POST", create_subscription)
        one = app.router.add_resource(prefix + "/{subscriptionId}", name=f"{name}.one")
        one.add_route("GET", get_subscription)
        one.add_route("PUT", put_subscription)
        one.add_route("DELETE", delete_subscription)
