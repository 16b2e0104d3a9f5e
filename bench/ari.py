"""The ARI way a user would record a call without pbx_bridge: plain aiohttp against
Asterisk's REST interface.

Start = ``POST /channels/{id}/snoop`` (a Snoop channel put into our Stasis app), wait for
its ``StasisStart`` on the events websocket if it has not come yet (ARI refuses to record
a channel that is not in Stasis yet), then ``POST /channels/{snoopId}/record`` (201).
Stop = ``DELETE /channels/{snoopId}``: hanging the Snoop channel up ends its recording.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from typing import Any

import aiohttp

APP = "pbx-bridge-bench"


class AriError(RuntimeError):
    pass


class Ari:
    def __init__(self, base_url: str, username: str, password: str, *, app: str = APP) -> None:
        self.base = base_url.rstrip("/")
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self.app = app
        self.http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ws_task: asyncio.Task | None = None
        self._in_stasis: set[str] = set()
        self._stasis_waiters: dict[str, asyncio.Future] = {}
        self._started: dict[str, asyncio.Future] = {}  # recording name -> RecordingStarted
        self._n = 0

    async def start(self, *, limit: int = 100) -> None:
        self.http = aiohttp.ClientSession(
            headers=self._headers, connector=aiohttp.TCPConnector(limit=limit)
        )
        ws_url = self.base.replace("http", "ws", 1) + "/events"
        self._ws = await self.http.ws_connect(
            ws_url, params={"app": self.app, "subscribeAll": "false"}, heartbeat=30
        )
        self._ws_task = asyncio.create_task(self._read_ws())

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._ws_task is not None:
            self._ws_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._ws_task
        if self.http is not None:
            await self.http.close()

    async def _read_ws(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            ev = json.loads(msg.data)
            kind = ev.get("type")
            if kind == "StasisStart":
                cid = ev["channel"]["id"]
                self._in_stasis.add(cid)
                fut = self._stasis_waiters.pop(cid, None)
                if fut is not None and not fut.done():
                    fut.set_result(None)
            elif kind == "StasisEnd":
                self._in_stasis.discard(ev["channel"]["id"])
            elif kind == "RecordingStarted":
                fut = self._started.pop(ev["recording"]["name"], None)
                if fut is not None and not fut.done():
                    fut.set_result(None)

    async def channels(self) -> list[dict[str, Any]]:
        assert self.http is not None
        async with self.http.get(f"{self.base}/channels") as r:
            if r.status != 200:
                raise AriError(f"GET /channels: {r.status}")
            return await r.json()

    async def start_recording(self, channel_id: str, *, confirmed: bool = False) -> str:
        """Snoop + record; returns the Snoop channel id (to stop it). With ``confirmed``,
        also wait for the RecordingStarted event (Asterisk answers 201 while "queued")."""
        assert self.http is not None
        self._n += 1
        snoop_id = f"bench-snoop-{self._n}"
        name = f"bench-{self._n}"
        loop = asyncio.get_running_loop()
        in_stasis = self._stasis_waiters[snoop_id] = loop.create_future()
        started = self._started[name] = loop.create_future()
        try:
            async with self.http.post(
                f"{self.base}/channels/{channel_id}/snoop",
                params={"spy": "both", "app": self.app, "snoopId": snoop_id},
            ) as r:
                if r.status != 200:
                    raise AriError(f"snoop on {channel_id}: {r.status} {await r.text()}")
                await r.read()
            if snoop_id not in self._in_stasis:
                async with asyncio.timeout(5):
                    await in_stasis
            async with self.http.post(
                f"{self.base}/channels/{snoop_id}/record",
                params={"name": name, "format": "wav", "ifExists": "overwrite"},
            ) as r:
                if r.status != 201:
                    raise AriError(f"record on {snoop_id}: {r.status} {await r.text()}")
                await r.read()
            if confirmed:
                async with asyncio.timeout(5):
                    await started
        finally:
            self._stasis_waiters.pop(snoop_id, None)
            self._started.pop(name, None)
        return snoop_id

    async def stop_recording(self, snoop_id: str) -> None:
        assert self.http is not None
        async with self.http.delete(f"{self.base}/channels/{snoop_id}") as r:
            if r.status not in (204, 404):
                raise AriError(f"hangup {snoop_id}: {r.status}")
            await r.read()
