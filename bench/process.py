"""Stopping a bench's `pbx-bridge serve` subprocess: SIGTERM, then SIGKILL after 15 s."""

from __future__ import annotations

import asyncio
import subprocess


async def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        await asyncio.to_thread(proc.wait, 15)
    except subprocess.TimeoutExpired:
        proc.kill()
        await asyncio.to_thread(proc.wait)
