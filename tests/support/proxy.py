"""A TCP relay between the bridge and Asterisk that a test can cut or freeze, to break
the AMI link from outside the bridge (fault injection only: both ends are real)."""

from __future__ import annotations

import asyncio
import contextlib


class LinkCutter:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.frozen = False
        self.blocked = False  # refuse new connections (the link stays down)
        self.connections = 0
        self.upstream = bytearray()  # every byte the client sent towards the target
        self._links: set[asyncio.Task] = set()
        # Actions (client -> target) whose "Action: " header starts with `hold` wait for
        # `release` (both ends real: a slow PBX answer, injected; other actions pass).
        self.hold: bytes | None = None
        self.release = asyncio.Event()
        self._partial: dict[int, bytes] = {}
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> LinkCutter:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.blocked:
            writer.transport.abort()
            return
        self.connections += 1
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_w}
        tasks = [
            asyncio.create_task(self._pump(reader, up_w, self.upstream)),
            asyncio.create_task(self._pump(up_r, writer)),
        ]
        self._links.update(tasks)
        await asyncio.gather(*tasks, return_exceptions=True)
        for w in (writer, up_w):
            self._writers.discard(w)
            w.close()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    seen: bytearray | None = None) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await src.read(65536):
                if seen is not None:  # as sent, even while frozen
                    seen += data
                while self.frozen:  # half-open: bytes stop flowing, sockets stay open
                    await asyncio.sleep(0.05)
                if seen is not None and self.hold is not None:
                    data = self._held(data, dst)
                dst.write(data)
                await dst.drain()

    def _held(self, data: bytes, dst: asyncio.StreamWriter) -> bytes:
        """``data`` without the held actions, which are written once released (an action
        cut across two reads waits for its end)."""
        assert self.hold is not None
        *blocks, rest = (self._partial.pop(id(dst), b"") + data).split(b"\r\n\r\n")
        if rest:
            self._partial[id(dst)] = rest
        passed, held = [], []
        for block in blocks:
            name = next((ln for ln in block.split(b"\r\n") if ln.startswith(b"Action: ")), b"")
            (held if name[8:].lower().startswith(self.hold.lower()) else passed).append(block)
        if held:
            payload = b"".join(b + b"\r\n\r\n" for b in held)
            task = asyncio.create_task(self._write_released(payload, dst))
            self._links.add(task)
        return b"".join(b + b"\r\n\r\n" for b in passed)

    async def _write_released(self, payload: bytes, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await self.release.wait()
            dst.write(payload)
            await dst.drain()

    def cut(self) -> None:
        """Drop every current connection abruptly (new ones are still accepted)."""
        for task in list(self._links):
            task.cancel()
        self._links.clear()
        for w in list(self._writers):
            if w.transport is not None:
                w.transport.abort()

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
