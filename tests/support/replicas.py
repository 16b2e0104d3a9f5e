"""Bridge replicas for tests/replicas: a real PostgreSQL server (tests/support/postgres.py),
`pbx-bridge db upgrade` on a fresh database of it, the demo directory loaded there, and
two `pbx-bridge serve` processes (configured through the environment only, as
serve_environ does) on their own HTTP ports against the sandbox Asterisk. Each replica has
its own AMI link and tracker; they share the database.

`Replica.kill()` is SIGKILL of its process group; `Replica.put/get` answer (status, JSON).
Webhook assertions: `Replicas.database_url` is the shared database, where the events and
the outbox live; the "no webhook lost or delivered twice" check reads it after a test
(hook: `Replicas.after`, callables run before the replicas stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from devtools.sandbox import Sandbox
from pbx_bridge.directory.store import Directory
from tests.support.bridge import DEMO_DIRECTORY, serve_environ
from tests.support.postgres import PostgresServer

__all__ = ["Replica", "Replicas", "start_replicas"]

PBX_BRIDGE = Path(sys.executable).with_name("pbx-bridge")
JOHN = 12  # owns 0003*210 and 0003*211 in the demo directory


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Replica:
    name: str
    env: dict[str, str]
    log: Path
    port: int
    http: aiohttp.ClientSession
    proc: asyncio.subprocess.Process | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 30.0) -> float:
        with open(self.log, "ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                str(PBX_BRIDGE), "serve", env=self.env, stdin=asyncio.subprocess.DEVNULL,
                stdout=out, stderr=out, start_new_session=True,
            )
        t0 = time.monotonic()
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with self.http.get(f"{self.base}/readyz") as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            if self.proc.returncode is not None or time.monotonic() - t0 > timeout:
                tail = self.log.read_text(errors="replace")[-3000:]
                raise AssertionError(f"replica {self.name} did not become ready:\n{tail}")
            await asyncio.sleep(0.05)

    async def kill(self) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(15):
                await self.proc.wait()
        except TimeoutError:
            await self.kill()

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.request(method, self.base + path, json=body) as r:
            raw = await r.read()
            return r.status, (await r.json() if raw else None)

    async def put(self, ext: str, cid: str, body: dict[str, Any]) -> tuple[int, Any]:
        return await self.request("PUT", f"/uapi/phoneCalls/@me/{ext}/{cid}", body)

    async def calls(self, ext: str) -> list[dict[str, Any]]:
        status, body = await self.request("GET", f"/uapi/phoneCalls/@me/{ext}?count=4999")
        assert status in (200, 204), (status, body)
        return body["entry"] if status == 200 else []

    async def recordings(self, ext: str) -> list[dict[str, Any]]:
        status, body = await self.request("GET", f"/uapi/recordings/@me/{ext}?count=4999")
        assert status in (200, 204), (status, body)
        return body["entry"] if status == 200 else []


@dataclass
class Replicas:
    database_url: str
    token: str  # JOHN's app token
    members: list[Replica]
    # Run (awaited) after the test body, while the replicas still run: where a suite adds
    # its checks of the shared database (e.g. webhooks: none lost or delivered twice).
    after: list[Callable[[Replicas], Awaitable[None]]] = field(default_factory=list)

    @property
    def a(self) -> Replica:
        return self.members[0]

    @property
    def b(self) -> Replica:
        return self.members[1]


def _prepare_database(url: str, tmp_path: Path, directory_file: Path = DEMO_DIRECTORY) -> str:
    """`pbx-bridge db upgrade` on the fresh database (as an operator does), then the demo
    directory (or ``directory_file``) and an app of JOHN's; its token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    env["PBX_BRIDGE_DATABASE__URL"] = url
    done = subprocess.run([str(PBX_BRIDGE), "db", "upgrade"], env=env, capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    directory = Directory.open(url)
    try:
        directory.load_toml(directory_file)
        client_id, _ = directory.create_app(JOHN, "replicas")
        return directory.issue_token(client_id)[0]
    finally:
        directory.close()


@contextlib.asynccontextmanager
async def start_replicas(
    pbx: Sandbox, postgres: PostgresServer, tmp_path: Path, n: int = 2, *,
    directory_file: Path = DEMO_DIRECTORY, **settings: str
) -> AsyncIterator[Replicas]:
    """``n`` replicas of `pbx-bridge serve` on one new PostgreSQL database, ready.
    ``directory_file``: the directory loaded into it (tests/cluster: nodes named)."""
    url = postgres.create_database()
    token = await asyncio.to_thread(_prepare_database, url, tmp_path, directory_file)
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {token}"},
        connector=aiohttp.TCPConnector(limit=0),
    ) as http:
        members = []
        for i in range(n):
            port = _free_port()
            env = serve_environ(
                pbx, tmp_path, port, PBX_BRIDGE_DATABASE__URL=url,
                PBX_BRIDGE_AMI__PING_INTERVAL="2", PBX_BRIDGE_AMI__BACKOFF_CAP="1",
                PBX_BRIDGE_LOGGING__LEVEL="DEBUG", **settings,
            )
            members.append(Replica(chr(ord("A") + i), env, tmp_path / f"serve-{i}.log",
                                   port, http))
        group = Replicas(url, token, members)
        try:
            await asyncio.gather(*(m.start() for m in members))
            yield group
            for check in group.after:
                await check(group)
        finally:
            await asyncio.gather(*(m.stop() for m in members))
