"""A bench's `pbx-bridge serve` subprocess: waiting until it is ready, and stopping it
(SIGTERM, then SIGKILL after 15 s)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Callable

import aiohttp


async def until_ready(http: aiohttp.ClientSession, base: str, proc: subprocess.Popen[bytes],
                      failed: Callable[[str], str], timeout: float = 30.0) -> None:
    """Until ``base``/readyz answers 200; RuntimeError(``failed(why)``) if the process
    exits or ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(failed("exited"))
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(f"{base}/readyz") as r:
                if r.status == 200:
                    return
        if time.monotonic() > deadline:
            raise RuntimeError(failed("not ready"))
        await asyncio.sleep(0.05)


async def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        await asyncio.to_thread(proc.wait, 15)
    except subprocess.TimeoutExpired:
        proc.kill()
        await asyncio.to_thread(proc.wait)
