"""A Server-Sent Events reader for the tests: the stream's lines parsed as the HTML
specification's EventSource does (``id``, ``event``, ``data`` fields, ``:`` comments,
a blank line dispatches; an ``id`` alone moves the last event id and dispatches
nothing), over an aiohttp client response."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp


@dataclass
class Message:
    event: str
    data: str
    id: str | None  # the last event id after this message (EventSource's lastEventId)

    @property
    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SseReader:
    resp: aiohttp.ClientResponse
    last_event_id: str | None = None
    comments: list[str] = field(default_factory=list)
    _event: str = ""
    _data: list[str] = field(default_factory=list)

    async def next(self) -> Message | None:
        """The next dispatched message, or None at the end of the stream."""
        while True:
            raw = await self.resp.content.readline()
            if not raw:
                return None
            line = raw.decode("utf-8").rstrip("\r\n")
            if not line:
                message = self._dispatch()
                if message is not None:
                    return message
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "id":
                self.last_event_id = value
            elif name == "event":
                self._event = value
            elif name == "data":
                self._data.append(value)

    def _dispatch(self) -> Message | None:
        event, data = self._event or "message", self._data
        self._event, self._data = "", []
        if not data:
            return None
        return Message(event, "\n".join(data), self.last_event_id)

    async def events(self, n: int) -> list[Message]:
        """The next ``n`` messages (the stream must not end before)."""
        out: list[Message] = []
        while len(out) < n:
            message = await self.next()
            assert message is not None, f"the stream ended after {len(out)} of {n}"
            out.append(message)
        return out
