"""The live-calls page (issue 12 item 5) in a real headless Chromium (Debian's
``chromium``, driven by Playwright through ``executable_path``: no browser is ever
downloaded), against the real bridge, the real Asterisk and a real baresip phone.

Keyboard only: sign in, see the call appear from the live stream, start recording, see
the state the PBX confirmed, pause, resume, stop, see the recording in the list, play it
(the <audio> element loads the file: duration > 0), hang up, see the call go. A screenshot of each
step under the test's tmp_path/screenshots. Along the way: every control has an
accessible name, the page logs no error (CSP, Trusted Types, script), and nothing it
requests leaves the bridge or carries the token in its URL.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.e2e.test_api_recording import A, Api, _serve

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package (scripts/bootstrap installs it)
# The machine's network is closed and the profile is new: nothing to sync or update.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT = 30_000  # ms: upper bound for what the PBX and the stream deliver (slack, not a target)
CONTROLS = ("button", "textbox", "checkbox", "link")


@pytest.fixture
async def api(pbx, tmp_path) -> AsyncIterator[Api]:
    async for a in _serve(pbx, tmp_path):
        yield a


@pytest.fixture
async def page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Page]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/bootstrap (apt package chromium)")
    monkeypatch.setenv("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=ARGS,
            viewport={"width": 1100, "height": 800})
        try:
            yield context.pages[0] if context.pages else await context.new_page()
        finally:
            await context.close()


class Shots:
    def __init__(self, page: Page, folder: Path) -> None:
        self.page, self.folder, self.taken = page, folder, []
        folder.mkdir()

    async def __call__(self, name: str) -> None:
        path = self.folder / f"{len(self.taken) + 1:02d}-{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)


async def _all_controls_named(page: Page) -> None:
    """Every visible control has an accessible name (what a screen reader says)."""
    for role in CONTROLS:
        shown = await page.get_by_role(role).count()  # type: ignore[arg-type]
        named = await page.get_by_role(role, name=re.compile(r"\S")).count()  # type: ignore[arg-type]
        assert named == shown, f"{shown - named} {role}(s) without an accessible name"


async def _tab_to(page: Page, label: str, limit: int = 40) -> None:
    """Press Tab until the control named ``label`` has the focus (keyboard reach)."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        focused = await page.evaluate(
            "() => document.activeElement && (document.activeElement.getAttribute"
            "('aria-label') || document.activeElement.textContent.trim())")
        if focused == label:
            return
    raise AssertionError(f"{label!r} not reached with Tab")


async def test_live_calls_page_in_chromium(api: Api, phones, page: Page, tmp_path) -> None:
    problems: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    shot = Shots(page, tmp_path / "screenshots")

    # Sign in with the keyboard: the token typed, Enter.
    await page.goto(f"{api.base}/ui")
    await _all_controls_named(page)
    await shot("sign-in")
    await page.get_by_label("Bearer token").focus()
    await page.keyboard.type(api.token)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Calls now")).to_be_focused()
    await expect(page.locator("#live")).to_have_text("Live updates: connected", timeout=WAIT)
    await expect(page.get_by_text("No live calls on your extensions.")).to_be_visible()
    await shot("signed-in")

    # A real call: it appears from the stream, and is announced.
    phone = await phones(A, tone_hz=600)
    await phone.dial("7778899")
    await phone.wait_event("CALL_ESTABLISHED")
    row = page.locator("#calls tbody tr", has_text=A)
    await expect(row).to_have_count(1, timeout=WAIT)
    await expect(row.locator("td").nth(2)).to_have_text("on call", timeout=WAIT)
    await expect(row.locator("td").nth(3)).to_have_text("Not recording")
    await expect(page.locator("#announce")).to_have_text(f"New call on {A}.")
    await _all_controls_named(page)
    await shot("live-call")

    # Record, from the keyboard: the state shown is the one the PBX confirmed.
    start = f"Start recording, {A} view 01"
    await _tab_to(page, start)
    await page.keyboard.press("Enter")
    await expect(row.locator("td").nth(3)).to_have_text(re.compile("^Recording since "),
                                                        timeout=WAIT)
    await expect(page.locator("#announce")).to_have_text(f"Recording started on {A}.",
                                                         timeout=WAIT)
    (call,) = await api.list()
    assert call["phoneCallView"][0]["recording"]  # the bridge's own view says so too
    await expect(page.get_by_role("button", name=start)).to_be_focused()  # focus kept
    await expect(page.get_by_role("button", name=start)).to_have_attribute(
        "aria-disabled", "true")
    await shot("recording")
    await asyncio.sleep(2.0)  # a recording of a few seconds to play back

    await page.keyboard.press("Tab")  # Pause
    await page.keyboard.press("Enter")
    await expect(row.locator("td").nth(3)).to_have_text(re.compile("^Paused since "),
                                                        timeout=WAIT)
    await shot("paused")
    await page.keyboard.press("Tab")  # Resume
    await expect(page.get_by_role("button", name=f"Resume recording, {A} view 01")
                 ).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(row.locator("td").nth(3)).to_have_text(re.compile("^Recording since "),
                                                        timeout=WAIT)
    await page.keyboard.press("Tab")  # Stop
    await expect(page.get_by_role("button", name=f"Stop recording, {A} view 01")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(row.locator("td").nth(3)).to_have_text("Not recording", timeout=WAIT)
    await shot("stopped")

    # The recording is listed once the catalog completes it, and plays.
    listed = page.locator("#recordings tbody tr", has_text="completed")
    await expect(listed).to_have_count(1, timeout=WAIT)
    await shot("listed")
    play = page.get_by_role("button", name=re.compile(r"^Play the recording of 0003\*210 "))
    await play.focus()
    await page.keyboard.press("Enter")
    await page.wait_for_function(
        "() => { const a = document.getElementById('player');"
        " return a.readyState >= 1 && a.duration > 0; }", timeout=WAIT)
    player = await page.evaluate(
        "() => { const a = document.getElementById('player');"
        " return {src: a.src, duration: a.duration, error: a.error && a.error.code}; }")
    assert player["src"].startswith("blob:") and player["error"] is None, player
    rows = await _recordings(api)
    assert abs(player["duration"] - rows[0]["duration"]) < 0.5, (player, rows[0])
    await _all_controls_named(page)
    await shot("playing")

    # Hang up: the call goes.
    await phone.hangup()
    await expect(row).to_have_count(0, timeout=WAIT)
    await expect(page.get_by_text("No live calls on your extensions.")).to_be_visible()
    await expect(page.locator("#announce")).to_have_text(f"Call on {A} ended.", timeout=WAIT)
    await shot("hung-up")

    assert problems == [], problems
    assert requests and all(u.startswith((api.base + "/", "blob:", "data:"))
                            for u in requests), requests
    assert not [u for u in requests if api.token in u]
    assert len(shot.taken) == 9 and all(p.stat().st_size > 0 for p in shot.taken)
    print("\nscreenshots:", shot.folder)


async def _recordings(api: Api) -> list[dict]:
    async with api.http.get(f"{api.base}/uapi/recordings/@me/{A}?state=completed",
                            headers=api.auth()) as r:
        assert r.status == 200, await r.text()
        return (await r.json())["entry"]


async def test_client_credentials_sign_in_and_a_refused_token(api: Api, page: Page) -> None:
    """The other way in (the bridge's own OAuth endpoint), and what a wrong token gets."""
    await page.goto(f"{api.base}/ui")
    await page.get_by_label("Bearer token").fill("not-a-token")
    await page.get_by_label("Bearer token").press("Enter")
    await expect(page.get_by_role("alert")).to_contain_text("Not signed in")
    await expect(page.get_by_label("Bearer token")).to_be_focused()

    client_id, secret = api.directory.create_app(12, "ui-e2e")
    await page.get_by_label("Client id").fill(client_id)
    await page.get_by_label("Client secret").fill(secret)
    await page.get_by_label("Client secret").press("Enter")
    await expect(page.locator("#live")).to_have_text("Live updates: connected", timeout=WAIT)
    kept = await page.evaluate("() => [sessionStorage.length, localStorage.length]")
    assert kept == [0, 0]  # "stay signed in" was not ticked: memory only

    await page.get_by_role("button", name="Sign out").press("Enter")
    await expect(page.get_by_label("Bearer token")).to_be_focused()
    await expect(page.get_by_role("heading", name="Calls now")).to_be_hidden()
