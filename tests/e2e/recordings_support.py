"""Helpers for the e2e tests of the recordings catalog: rows through the API, waited for,
and the audio of a stretch of a recording."""

from __future__ import annotations

import array
import asyncio
from pathlib import Path

from tests.e2e.test_api_recording import Api
from tests.support.audio import inspect_wav, wait_file_complete

RATE = 8000


async def recordings(api: Api, ext: str, token: str | None = None) -> list[dict]:
    async with api.http.get(f"{api.base}/uapi/recordings/@me/{ext}",
                            headers=api.auth(token)) as r:
        if r.status == 204:
            return []
        assert r.status == 200, await r.text()
        return (await r.json())["entry"]


async def finished_row(api: Api, ext: str, token: str | None = None, *,
                       started_by: str | None = None, timeout: float = 30.0) -> dict:
    """The extension's one recording (of `started_by`), once its file was read."""
    rows: list[dict] = []
    for _ in range(int(timeout / 0.2)):
        rows = [r for r in await recordings(api, ext, token)
                if started_by is None or r["startedBy"] == started_by]
        if len(rows) == 1 and rows[0]["state"] not in ("recording", "paused"):
            return rows[0]
        await asyncio.sleep(0.2)
    raise AssertionError(f"no finished recording of {ext} within {timeout} s: {rows}")


async def media(api: Api, row: dict, token: str | None = None) -> bytes:
    async with api.http.get(row["link"]["media"].replace(
            api.bridge.settings.http.public_base_url, api.base), headers=api.auth(token)) as r:
        assert r.status == 200, await r.text()
        return await r.read()


async def samples_of(path: Path, sandbox_root: Path | None = None) -> array.array:
    await wait_file_complete(path)
    return inspect_wav(path, sandbox_root).samples


def stretch(samples: array.array, start: float, end: float | None = None) -> array.array:
    """The samples from `start` to `end` seconds into the file."""
    stop = None if end is None else int(end * RATE)
    return samples[int(start * RATE):stop]
