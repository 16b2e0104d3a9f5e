"""The live-calls page's files as the bridge serves them (issue 12 item 5): the security
headers, no inline script or style anywhere, every asset the page names served by the
bridge itself (nothing from another origin), the files in the package (so the wheel
carries them). The page's behaviour in a real browser: tests/browser/."""

from __future__ import annotations

from html.parser import HTMLParser
from importlib import resources

import pytest

from pbx_bridge.ui.routes import CSP, FILES
from tests.unit.api_support import Api


@pytest.fixture
async def api(aiohttp_client, tmp_path) -> Api:
    return await Api.start(aiohttp_client, tmp_path)


class _Page(HTMLParser):
    """What of index.html can run or load something."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.urls: list[str] = []
        self.inline: list[str] = []  # on* handlers, style attributes, <style>, inline script
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        for name, value in attrs:
            if name.startswith("on") or name == "style":
                self.inline.append(f"{tag} {name}")
            if name in ("src", "href") and value and not value.startswith("#"):
                self.urls.append(value)
        if tag == "script":
            self.scripts.append(named)
            self._in_script = True
        if tag == "style":
            self.inline.append("<style>")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False if tag == "script" else self._in_script

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append("inline <script>")


@pytest.mark.parametrize("path", ["/ui", "/ui/", "/ui/app.js", "/ui/app.css"])
async def test_every_file_has_the_security_headers(api: Api, path: str) -> None:
    resp = await api.client.get(path)
    assert resp.status == 200
    headers = resp.headers
    assert headers["Content-Security-Policy"] == CSP
    policy = dict(part.split(" ", 1) for part in CSP.split("; "))
    assert policy["default-src"] == "'none'" and policy["script-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and policy["connect-src"] == "'self'"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    expected = {"/ui": "text/html", "/ui/": "text/html", "/ui/app.js": "text/javascript",
                "/ui/app.css": "text/css"}[path]
    assert resp.content_type == expected


async def test_the_page_runs_only_its_own_script_and_loads_only_from_the_bridge(
        api: Api) -> None:
    page = _Page()
    page.feed(await (await api.client.get("/ui")).text())
    assert page.inline == []
    assert [s.get("src") for s in page.scripts] == ["/ui/app.js"]
    for url in page.urls:
        if url == "data:,":  # the empty favicon: nothing is requested
            continue
        assert url.startswith("/ui"), url
        assert (await api.client.get(url)).status == 200, url


async def test_the_forms_never_send_a_secret_in_a_url(api: Api) -> None:
    html = await (await api.client.get("/ui")).text()
    assert html.count("<form ") == 2 and html.count('method="post"') == 2
    assert "form-action 'none'" in CSP
    script = await (await api.client.get("/ui/app.js")).text()
    assert "localStorage." not in script and "accessRequestToken" not in script


def test_the_files_are_package_data() -> None:
    static = resources.files("pbx_bridge.ui") / "static"
    assert sorted(name for name, _ in FILES.values()) == sorted(
        p.name for p in static.iterdir() if p.is_file())
