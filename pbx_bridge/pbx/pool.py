"""Several AMI sessions for actions, one for events (issue 15).

Asterisk runs the actions of one manager session one after the other, in the session's
own thread, and that thread also writes every event the session subscribes to between
two actions. Under many concurrent requests one session is a queue: a start waits for
every action (and event) ahead of it. `AmiPool` is the event session itself (an
`AmiClient`, unchanged: events, the connect marker, the resync) plus ``action_sessions``
more sessions of the same user, logged in with ``Events: off`` and the same timeouts,
Ping watchdog and backoff, that carry the actions.

Ordering: an action naming a channel (its ``Channel`` header, else ``Channel1``) goes to
the session its channel hashes to (CRC-32, stable), so one channel's actions keep the
order they were sent in, as on one session. While a channel has actions unanswered on
a session, its next ones follow them there, whatever happened to the other sessions
meanwhile (a session that came back does not let a later action overtake). Actions
naming no channel go to the action session with the fewest unanswered ones. Sequences
over several channels (hold's Setvars, then Redirect) await each step already.

The event session keeps what must be ordered with the events: its Login and Ping,
CoreShowChannels (the resync's snapshot) and the actions that change what the session
itself receives (Events, Filter, WaitEvent). A session that is down is never used: its
channels' actions go to the event session (as with ``action_sessions = 0``), and when
that is down too the caller gets `AmiNotConnected` (503) as before. An action lost with
a session that dropped while it waited fails with `AmiNotConnected`; it is never sent
again elsewhere (Asterisk may have run it), and the loss handlers are told (PbxLink then
resyncs before it claims anything again, as after a loss of the one session before).

Answers and events now travel on different sockets, so an action's Response may come
before or after the events it caused: every caller confirms with state (a predicate
over the tracker, a remembered ActionID), never with the order of the two.
"""

from __future__ import annotations

import logging
import zlib
from typing import Any, Final

from pbx_bridge.pbx.ami import AmiClient, AmiNotConnected, Headers, Message, StateHandler

__all__ = ["EVENT_SESSION_ACTIONS", "AmiPool", "channel_of"]

log = logging.getLogger("pbx_bridge.ami")

#: Actions (lower case) that always use the event session.
EVENT_SESSION_ACTIONS: Final = frozenset({"coreshowchannels", "events", "filter", "waitevent"})
_CHANNEL_HEADERS: Final = ("channel", "channel1")


def channel_of(headers: Headers | None) -> str | None:
    """The channel an action is about (``Channel``, else ``Channel1``), if any."""
    if not headers:
        return None
    lowered = {str(k).lower(): v for k, v in headers.items()}
    for key in _CHANNEL_HEADERS:
        value = lowered.get(key)
        if isinstance(value, str) and value:
            return value
    return None


class _Lane:
    """A channel's unanswered actions: the session they went to, and how many."""

    __slots__ = ("client", "count")

    def __init__(self, client: AmiClient) -> None:
        self.client = client
        self.count = 0


class AmiPool(AmiClient):
    """The event session (this client) and ``action_sessions`` action sessions."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        action_sessions: int = 0,
        **options: Any,
    ) -> None:
        options.pop("events", None)
        super().__init__(host, port, username, secret, **options)
        self.sessions: list[AmiClient] = [
            AmiClient(host, port, username, secret, events="off", **options)
            for _ in range(action_sessions)
        ]
        self._lanes: dict[str, _Lane] = {}
        self._unanswered: dict[int, int] = {}  # id(session) -> actions it owes us
        self._loss_handlers: list[StateHandler] = []
        #: Actions sent per session through the pool: [event session, action sessions...].
        self.routed = [0] * (1 + action_sessions)

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]} +{self.action_sessions_up}/{len(self.sessions)}>"

    def add_action_loss_handler(self, fn: StateHandler) -> None:
        """Call ``fn()`` when an action session dropped an action before its answer
        (whether Asterisk ran it is unknown). Sync handlers only; spawn what takes time."""
        self._loss_handlers.append(fn)

    # -- state -------------------------------------------------------------

    @property
    def action_sessions_up(self) -> int:
        """How many action sessions are logged in right now."""
        return sum(1 for s in self.sessions if s.connected)

    @property
    def reconnects_all(self) -> int:
        """Reconnects of every session, the event session's included."""
        return self.reconnects + sum(s.reconnects for s in self.sessions)

    # -- life cycle --------------------------------------------------------

    async def start(self) -> None:
        await super().start()
        for session in self.sessions:
            await session.start()

    async def close(self) -> None:
        for session in self.sessions:
            await session.close()
        await super().close()

    # -- actions -----------------------------------------------------------

    async def send_action(
        self,
        action: str,
        headers: Headers | None = None,
        *,
        timeout: float | None = None,
    ) -> Message:
        client, channel = self._session_for(action, headers)
        with _InFlight(self, channel, client):
            if client is self:
                return await super().send_action(action, headers, timeout=timeout)
            try:
                return await client.send_action(action, headers, timeout=timeout)
            except AmiNotConnected:
                self._lost_answer()
                raise

    async def send_list_action(
        self,
        action: str,
        headers: Headers | None = None,
        *,
        timeout: float | None = None,
    ) -> tuple[Message, list[Message]]:
        client, channel = self._session_for(action, headers)
        with _InFlight(self, channel, client):
            if client is self:
                return await super().send_list_action(action, headers, timeout=timeout)
            try:
                return await client.send_list_action(action, headers, timeout=timeout)
            except AmiNotConnected:
                self._lost_answer()
                raise

    def _lost_answer(self) -> None:
        for fn in list(self._loss_handlers):
            try:
                fn()
            except Exception:  # one bad handler must not hide the caller's error
                log.exception("AMI action-loss handler %r failed", fn)

    def _session_for(self, action: str, headers: Headers | None) -> tuple[AmiClient, str | None]:
        """The session for this action (see the module's doc), and its channel."""
        channel = channel_of(headers)
        if not self.sessions or action.lower() in EVENT_SESSION_ACTIONS:
            return self, channel
        if channel is not None:
            lane = self._lanes.get(channel)
            if lane is not None and (lane.client is self or lane.client.connected):
                return lane.client, channel
            chosen = self.sessions[zlib.crc32(channel.encode()) % len(self.sessions)]
            return (chosen if chosen.connected else self), channel
        up = [s for s in self.sessions if s.connected]
        if not up:
            return self, None
        return min(up, key=lambda s: self._unanswered.get(id(s), 0)), None

    def _count(self, client: AmiClient) -> None:
        self.routed[0 if client is self else 1 + self.sessions.index(client)] += 1


class _InFlight:
    """Counts one action as unanswered on its session (and its channel's lane) while it
    waits; entered synchronously, before the action is written."""

    __slots__ = ("channel", "client", "pool")

    def __init__(self, pool: AmiPool, channel: str | None, client: AmiClient) -> None:
        self.pool = pool
        self.channel = channel
        self.client = client

    def __enter__(self) -> None:
        pool, key = self.pool, id(self.client)
        pool._count(self.client)
        pool._unanswered[key] = pool._unanswered.get(key, 0) + 1
        if self.channel is not None:
            lane = pool._lanes.get(self.channel)
            if lane is None or lane.client is not self.client:
                lane = pool._lanes[self.channel] = _Lane(self.client)
            lane.count += 1

    def __exit__(self, *exc: object) -> None:
        pool, key = self.pool, id(self.client)
        left = pool._unanswered.get(key, 1) - 1
        if left:
            pool._unanswered[key] = left
        else:
            pool._unanswered.pop(key, None)
        if self.channel is None:
            return
        lane = pool._lanes.get(self.channel)
        if lane is not None and lane.client is self.client:
            lane.count -= 1
            if lane.count <= 0:
                del pool._lanes[self.channel]
