"""A small hand-written fake Asterisk Manager Interface server for tests.

Every instance listens on its own 127.0.0.1 port (port 0: chosen by the OS)
and keeps all its state on itself: several can run in one process without
touching each other (panoramisk's test helper patched a global instead).

It parses actions with its own few lines of code, not with the framing module
under test.

    async with FakeAmi(secret="s3cret") as ami:
        client = AmiClient("127.0.0.1", ami.port, "bridge", "s3cret")
        ...
        await ami.send_event({"Event": "Newchannel", "Channel": "PJSIP/1-1"})
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Fields = Mapping[str, str] | Iterable[tuple[str, str]]
Handler = Callable[["FakeConnection", dict[str, str]], Awaitable[None] | None]


def encode(fields: Fields) -> bytes:
    """``{"Event": "X", ...}`` (or a list of pairs, for repeated keys) to AMI bytes."""
    pairs = fields.items() if isinstance(fields, Mapping) else fields
    return "".join(f"{k}: {v}\r\n" for k, v in pairs).encode() + b"\r\n"


@dataclass
class FakeConnection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    logged_in: bool = False
    #: The Login's ``Events`` header ("on", "off", ...), once logged in.
    events: str | None = None
    #: Every action this connection received, in order.
    actions: list[dict[str, str]] = field(default_factory=list)
    #: False: read and record actions but answer none (a half-open link).
    answering: bool = True
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    async def send(self, fields: Fields) -> None:
        await self.send_raw(encode(fields))

    async def send_raw(self, data: bytes) -> None:
        if self.writer.is_closing():
            return
        self.writer.write(data)
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    def send_later(self, delay: float, fields: Fields) -> None:
        """Answer after ``delay`` seconds without blocking later actions."""

        async def later() -> None:
            await asyncio.sleep(delay)
            await self.send(fields)

        task = asyncio.create_task(later())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def abort(self) -> None:
        self.writer.transport.abort()


class FakeAmi:
    def __init__(
        self,
        *,
        username: str = "bridge",
        secret: str = "s3cret",
        banner: bytes = b"Asterisk Call Manager/11.0.0\r\n",
        login_delay: float = 0.0,
        login_delays: Iterable[float] = (),
        fully_booted: bool = True,
        record_actions: bool = True,
    ) -> None:
        self.username = username
        self.secret = secret
        self.banner = banner
        #: Seconds to wait before answering a Login (may be changed any time).
        self.login_delay = login_delay
        #: Per-Login delays, used up one per Login before ``login_delay`` applies.
        self.login_delays = list(login_delays)
        self.record_actions = record_actions
        self.fully_booted = fully_booted
        #: Logins it refuses although the credentials are right (``refuse(login) -> bool``).
        self.refuse: Callable[[dict[str, str]], bool] | None = None
        #: Custom answers: lower-case action name -> handler(conn, action).
        self.handlers: dict[str, Handler] = {}
        self.connections: list[FakeConnection] = []
        #: (monotonic time, accepted) per Login received.
        self.logins: list[tuple[float, bool]] = []
        #: Every action received, in order (repeated headers: last wins).
        self.actions: list[dict[str, str]] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._serving: set[asyncio.Task[Any]] = set()

    async def start(self) -> FakeAmi:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in self.connections:
            for task in list(conn.tasks):
                task.cancel()
            conn.abort()
        for task in list(self._serving):
            task.cancel()
        for task in list(self._serving):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> FakeAmi:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- helpers for tests -------------------------------------------------

    @property
    def current(self) -> FakeConnection:
        """The most recent connection."""
        return self.connections[-1]

    def actions_named(self, name: str) -> list[dict[str, str]]:
        return [a for a in self.actions if a.get("Action", "").lower() == name.lower()]

    async def send_event(self, fields: Fields) -> None:
        """Send to the most recent logged-in connection."""
        await self.current.send(fields)

    async def wait_until(
        self, predicate: Callable[[], bool], timeout: float = 2.0, what: str = ""
    ) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.005)

    async def wait_logged_in(self, count: int = 1, timeout: float = 2.0) -> FakeConnection:
        """Wait for the count-th accepted login; return the newest connection."""
        await self.wait_until(lambda: sum(ok for _, ok in self.logins) >= count, timeout)
        return self.current

    # -- the server ----------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._serving.add(task)
        conn = FakeConnection(reader, writer)
        self.connections.append(conn)
        try:
            await conn.send_raw(self.banner)
            buf = b""
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    raw, buf = buf.split(b"\r\n\r\n", 1)
                    action: dict[str, str] = {}
                    for line in raw.decode("utf-8", "replace").split("\r\n"):
                        key, _, value = line.partition(": ")
                        action[key] = value
                    if self.record_actions:
                        self.actions.append(action)
                        conn.actions.append(action)
                    await self._handle(conn, action)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._serving.discard(task)
            writer.transport.abort()

    async def _handle(self, conn: FakeConnection, action: dict[str, str]) -> None:
        name = action.get("Action", "").lower()
        action_id = action.get("ActionID", "")
        if name == "login":
            delay = self.login_delays.pop(0) if self.login_delays else self.login_delay
            if delay:
                await asyncio.sleep(delay)
            ok = action.get("Username") == self.username and action.get("Secret") == self.secret
            if ok and self.refuse is not None and self.refuse(action):
                ok = False
            self.logins.append((time.monotonic(), ok))
            if ok:
                conn.logged_in = True
                conn.events = action.get("Events")
                await conn.send(
                    {
                        "Response": "Success",
                        "ActionID": action_id,
                        "Message": "Authentication accepted",
                    }
                )
                if self.fully_booted:
                    await conn.send(
                        {
                            "Event": "FullyBooted",
                            "Privilege": "system,all",
                            "Status": "Fully Booted",
                        }
                    )
            else:
                await conn.send(
                    {"Response": "Error", "ActionID": action_id, "Message": "Authentication failed"}
                )
            return
        if not conn.answering:
            return
        handler = self.handlers.get(name)
        if handler is not None:
            result = handler(conn, action)
            if result is not None:
                await result
            return
        if name == "ping":
            await conn.send(
                {
                    "Response": "Success",
                    "ActionID": action_id,
                    "Ping": "Pong",
                    "Timestamp": f"{time.time():.6f}",
                }
            )
        elif name == "logoff":
            await conn.send(
                {
                    "Response": "Goodbye",
                    "ActionID": action_id,
                    "Message": "Thanks for all the fish.",
                }
            )
            conn.abort()
        elif name == "dbgettree":  # an empty family, as a fresh Asterisk answers
            await conn.send({"Response": "Error", "ActionID": action_id,
                             "Message": "Database entry not found"})
        else:
            await conn.send({"Response": "Success", "ActionID": action_id, "Message": "fake ok"})
