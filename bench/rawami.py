"""The floor: the least an AMI client can do. One asyncio socket, no library, none of
pbx_bridge's code: write an action, split the stream on blank lines, hand the answer to
whoever waits for its ActionID.

It also counts MixMonitorStart/MixMonitorStop per Uniqueid (``Filter`` keeps every other
event away from this session), so the bench can wait until a recording has really
started or stopped, whoever started it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from dataclasses import dataclass, field

Message = dict[str, str]


def encode(action: str, action_id: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"Action: {action}", f"ActionID: {action_id}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def parse(block: bytes) -> Message:
    msg: Message = {}
    for line in block.decode("utf-8", "replace").split("\r\n"):
        key, sep, value = line.partition(": ")
        if sep and key not in msg:
            msg[key] = value
    return msg


@dataclass
class _Waiter:
    future: asyncio.Future
    is_list: bool
    response: Message | None = None
    items: list[Message] = field(default_factory=list)


class RawAmi:
    def __init__(self) -> None:
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task | None = None
        self._waiters: dict[str, _Waiter] = {}
        self._next = 0
        # (event name, uniqueid) -> how many seen, and who waits for the next one
        self.counts: dict[tuple[str, str], int] = defaultdict(int)
        self._count_waiters: dict[tuple[str, str], list[tuple[int, asyncio.Future]]] = (
            defaultdict(list)
        )
        self.events = 0
        self.capture: list[bytes] | None = None  # set to a list to keep every event's bytes

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        events: str = "off",
        filters: tuple[str, ...] = (),
    ) -> RawAmi:
        self = cls()
        self._reader, self._writer = await asyncio.open_connection(host, port)
        await self._reader.readline()  # banner
        self._task = asyncio.create_task(self._read())
        resp = await self.action(
            "Login", {"Username": username, "Secret": secret, "Events": events}
        )
        if resp.get("Response") != "Success":
            raise RuntimeError(f"AMI login failed: {resp.get('Message')}")
        for f in filters:
            await self.action("Filter", {"Operation": "Add", "Filter": f})
        return self

    async def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.write(encode("Logoff", "bye"))
            self._writer.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def _send(self, action: str, headers: dict[str, str] | None, is_list: bool) -> _Waiter:
        self._next += 1
        aid = f"raw-{self._next}"
        waiter = _Waiter(asyncio.get_running_loop().create_future(), is_list)
        self._waiters[aid] = waiter
        assert self._writer is not None
        self._writer.write(encode(action, aid, headers))
        return waiter

    async def action(self, action: str, headers: dict[str, str] | None = None) -> Message:
        return await self._send(action, headers, False).future

    async def list_action(
        self, action: str, headers: dict[str, str] | None = None
    ) -> tuple[Message, list[Message]]:
        return await self._send(action, headers, True).future

    def count(self, event: str, uniqueid: str) -> int:
        return self.counts[(event, uniqueid)]

    async def wait_count(self, event: str, uniqueid: str, at_least: int, timeout: float) -> None:
        key = (event, uniqueid)
        if self.counts[key] >= at_least:
            return
        fut = asyncio.get_running_loop().create_future()
        self._count_waiters[key].append((at_least, fut))
        async with asyncio.timeout(timeout):
            await fut

    async def _read(self) -> None:
        assert self._reader is not None
        buf = b""
        while True:
            data = await self._reader.read(65536)
            if not data:
                for w in self._waiters.values():
                    if not w.future.done():
                        w.future.set_exception(ConnectionError("AMI link closed"))
                return
            buf += data
            *blocks, buf = buf.split(b"\r\n\r\n")
            capture = self.capture
            for block in blocks:
                if block:
                    if capture is not None and block.startswith(b"Event: "):
                        capture.append(block)  # without its blank line
                    self._route(parse(block))

    def _route(self, msg: Message) -> None:
        aid = msg.get("ActionID")
        waiter = self._waiters.get(aid) if aid else None
        if "Response" in msg:
            if waiter is None:
                return
            if not waiter.is_list or msg["Response"] != "Success":
                del self._waiters[aid]
                waiter.future.set_result((msg, []) if waiter.is_list else msg)
            else:
                waiter.response = msg
            return
        name = msg.get("Event")
        if name is None:
            return
        self.events += 1
        if waiter is not None and waiter.is_list:
            if msg.get("EventList") == "Complete":
                del self._waiters[aid]
                waiter.future.set_result((waiter.response or {}, waiter.items))
            else:
                waiter.items.append(msg)
            return
        uid = msg.get("Uniqueid")
        if uid:
            key = (name, uid)
            self.counts[key] += 1
            waiting = self._count_waiters.get(key)
            if waiting:
                n = self.counts[key]
                keep = []
                for at_least, fut in waiting:
                    if n >= at_least:
                        if not fut.done():
                            fut.set_result(None)
                    else:
                        keep.append((at_least, fut))
                self._count_waiters[key] = keep
