"""``GET /ui``: the live-calls page, three static files packaged with pbx_bridge
(``pbx_bridge/ui/static``, in the wheel through ``package-data``); nothing is fetched
from anywhere else.

The files are read once, when the routes are added, and served from memory: the names
are a fixed table (no path from the request ever reaches the file system). The page
itself holds no data: it signs in with a bearer token and calls the API like any app.

Every answer carries a strict Content-Security-Policy: only this origin's script and
style (no inline script, no eval), connections only to this origin, media from this
origin or the page's own ``blob:`` URLs (the recordings player), no frames around it
(``frame-ancestors 'none'``), no form posted anywhere (the sign-in forms are handled by
the script, so a token can never end up in a URL), and Trusted Types required (the
script writes text, never HTML).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web

__all__ = ["CSP", "UI_PATH", "add_ui_routes", "ui_paths"]

UI_PATH = "/ui"
CSP = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "connect-src 'self'",
    "media-src 'self' blob:",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    "require-trusted-types-for 'script'",
))
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    # Revalidated every time: a bridge upgraded under an open page serves the new script.
    "Cache-Control": "no-cache",
}
# path under /ui -> (file in static/, media type)
FILES = {
    "": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}


def _handler(body: bytes, content_type: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=body, headers={**HEADERS, "Content-Type": content_type})

    return serve


def add_ui_routes(app: web.Application) -> None:
    static = resources.files("pbx_bridge.ui") / "static"
    for suffix, (name, content_type) in FILES.items():
        body = (static / name).read_bytes()
        app.router.add_get(UI_PATH + suffix, _handler(body, content_type), allow_head=False,
                           name=f"ui.{name}")


def ui_paths() -> dict[str, Any]:
    """The page's paths in the OpenAPI document (every served route is documented)."""
    paths: dict[str, Any] = {}
    for suffix, (name, content_type) in FILES.items():
        media = content_type.partition(";")[0]
        paths[UI_PATH + suffix] = {"get": {
            "operationId": "getUi" + name.replace(".", " ").title().replace(" ", ""),
            "tags": ["ui"],
            "summary": f"The live-calls page: {name} (static; the page signs in with a token)",
            "security": [],
            "responses": {"200": {"description": name,
                                  "content": {media: {"schema": {"type": "string"}}}}},
        }}
    return paths
