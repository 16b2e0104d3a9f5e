"""The PBX link: one AMI connection feeding the call tracker, handed to the features.

`PbxLink` owns the AMI client and the tracker, and nothing else of a feature's:
- readiness: ready once a (re)connect's resync is done (`require_ready` for requests);
- resync: Asterisk's channel list (CoreShowChannels) on every (re)connect and every
  ``pbx.resync_interval`` seconds, a safety net against any event Asterisk never sent;
- every event and every resync goes to the tracker first, then to each registered
  `Feature` (recording/feature.py is one), which may act on Asterisk through the link;
- the tracker's effects (Setvar PBX_VIEW) are written back to Asterisk;
- the queries the API needs (calls of extensions, one call, a view's extension, a call
  rendered), so that nothing above reads the tracker directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any

from pbx_bridge.calls.render import render_call
from pbx_bridge.calls.tracker import Call, Tracker
from pbx_bridge.config import AmiSettings
from pbx_bridge.core.feature import Event, Feature
from pbx_bridge.errors import PbxUnavailable
from pbx_bridge.pbx.ami import AmiClient, AmiError, is_success
from pbx_bridge.pbx.pool import AmiPool

__all__ = ["PbxLink", "ami_client"]

# A failed (re)connect resync is tried again after 0.5 s, then doubling up to 10 s.
RESYNC_RETRY_FIRST = 0.5
RESYNC_RETRY_CAP = 10.0

# The service's log keeps its name (operators filter on it).
log = logging.getLogger("pbx_bridge.core")


def ami_client(s: AmiSettings) -> AmiPool:
    """The event session and ``[ami] action_sessions`` sessions for actions (pbx/pool.py)."""
    return AmiPool(
        s.host,
        s.port,
        s.username,
        s.secret.get_secret_value(),
        action_sessions=s.action_sessions,
        ping_interval=s.ping_interval,
        ping_timeout=s.ping_timeout,
        action_timeout=s.action_timeout,
        connect_timeout=s.connect_timeout,
        backoff_cap=s.backoff_cap,
        auth_retry=s.auth_retry,
    )


class PbxLink:
    def __init__(
        self,
        ami: AmiClient,
        devices: Callable[[], Mapping[str, str]],
        *,
        resync_interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``devices``: device -> extension number, asked again on every resync and
        directory change."""
        self.ami = ami
        self.clock = clock
        self.tracker = Tracker(devices(), clock=clock)
        self.ready = False
        self.resyncs = 0
        self.events = 0  # AMI events handed to the tracker (metrics: ingest per node)
        self._devices = devices
        self._resync_interval = resync_interval
        self._features: list[Feature] = []
        self._changed = asyncio.Condition()
        self._waiting = 0  # callers inside wait_until: nobody to wake when 0
        self._bg: set[asyncio.Task[Any]] = set()
        self._resync_task: asyncio.Task[None] | None = None
        self._epoch = 0  # event-session logins so far: a recovery of an older one is moot
        self._recovering = False
        ami.add_event_handler(self._on_event)
        ami.add_connect_handler(self._on_connect)
        ami.add_disconnect_handler(self._on_disconnect)
        if isinstance(ami, AmiPool):
            ami.add_action_loss_handler(self._on_action_loss)

    def add_feature(self, feature: Feature) -> None:
        self._features.append(feature)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self.ami.start()
        self._resync_task = asyncio.create_task(self._periodic_resync())

    async def close(self) -> None:
        if self._resync_task:
            self._resync_task.cancel()
        for task in list(self._bg):
            task.cancel()
        await self.ami.close()
        self.ready = False

    def reload_devices(self) -> None:
        """The directory changed: re-label live channels, then tell the features."""
        self.tracker.set_devices(self._devices())
        for feature in self._features:
            feature.on_directory()

    # ------------------------------------------------------------------ AMI side
    async def _on_connect(self) -> None:
        self._epoch += 1
        self.ready = False
        if not await self._first_resync(self._epoch):
            return  # the link fell or logged in again: that connect resyncs
        for feature in self._features:
            await feature.on_connected()
        self.ready = True
        log.info("AMI ready: %d live calls after resync", len(self.tracker.calls))
        for feature in self._features:
            feature.on_ready(reconnected=True)

    async def _first_resync(self, epoch: int) -> bool:
        """The (re)connect's resync, tried again while it fails (a slow or busy PBX: a
        timed-out CoreShowChannels once left the bridge unready for the whole
        connection, since the periodic resync runs only when ready). Events wait meanwhile
        (this runs in the ordered dispatcher), as during any resync. False if the
        connection it was for is gone."""
        delay = RESYNC_RETRY_FIRST
        while True:
            try:
                await self.resync(reconnected=True)
                return True
            except AmiError as exc:
                if epoch != self._epoch or not self.ami.connected:
                    return False
                log.warning("resync after connect failed (%s): trying again in %.1f s",
                            exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESYNC_RETRY_CAP)

    def _on_disconnect(self) -> None:
        self.ready = False

    def _on_action_loss(self) -> None:
        """An action session dropped an action before its answer: whether Asterisk ran it
        is unknown, and the event session (still up) resyncs nothing by itself. So, as
        after the loss of the one session before, nothing is claimed until a resync
        (its PBX_REC stamps checked against the MixMonitors Asterisk runs) is done."""
        if not self.ready or self._recovering:
            return  # a (re)connect's resync, or a recovery, is on its way
        self.ready = False
        self._recovering = True
        self.spawn(self._recover(self._epoch))

    async def _recover(self, epoch: int) -> None:
        try:
            while epoch == self._epoch and self.ami.connected:
                try:
                    # As after a reconnect: a lost answer may hide anything (a stopped
                    # MixMonitor whose PBX_REC stayed), so every stamp is checked again.
                    await self.resync(reconnected=True)
                except AmiError as exc:
                    log.warning("resync after a lost AMI action session failed: %s", exc)
                    await asyncio.sleep(1.0)
                    continue
                if epoch != self._epoch:
                    return  # the event session logged in again: its own resync decides
                self.ready = True
                log.info("AMI ready again after a lost action session: %d live calls",
                         len(self.tracker.calls))
                for feature in self._features:
                    feature.on_ready(reconnected=True)
                return
        finally:
            self._recovering = False

    async def resync(self, *, reconnected: bool = False) -> None:
        """Replace the tracker's picture with Asterisk's channel list."""
        resp, items = await self.ami.send_list_action("CoreShowChannels")
        if not is_success(resp):
            raise AmiError(f"CoreShowChannels refused: {resp.get('Message')}")
        rows: list[Event] = list(items)
        for feature in self._features:
            rows = await feature.review_snapshot(rows, reconnected=reconnected)
        self.tracker.set_devices(self._devices())
        self.tracker.resync(rows)
        for feature in self._features:
            feature.on_snapshot(rows)
        self.resyncs += 1
        self._flush_effects()
        await self._notify()

    async def _periodic_resync(self) -> None:
        while True:
            await asyncio.sleep(self._resync_interval)
            if self.ready:
                with contextlib.suppress(AmiError):
                    await self.resync()
                for feature in self._features:
                    feature.on_ready(reconnected=False)

    async def _on_event(self, ev: Event) -> None:
        self.events += 1
        self.tracker.feed(ev)
        self._flush_effects()
        for feature in self._features:
            feature.on_event(ev)
        await self._notify()

    async def _notify(self) -> None:
        if not self._waiting:  # the usual case: no lock round trip per event
            return
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Until ``predicate`` holds after an event or resync, at most ``timeout`` s."""
        self._waiting += 1
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout), self._changed:
                    await self._changed.wait_for(predicate)
        finally:
            self._waiting -= 1

    def _flush_effects(self) -> None:
        for eff in self.tracker.take_effects():
            self.spawn(self.setvar(eff.channel, eff.variable, eff.value))

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run in the background; cancelled by `close`."""
        task = asyncio.create_task(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def setvar(self, channel: str, variable: str, value: str) -> None:
        """Set a channel variable, best effort (the channel may have hung up)."""
        try:
            await self.ami.send_action(
                "Setvar", {"Channel": channel, "Variable": variable, "Value": value}
            )
        except AmiError as exc:
            log.debug("Setvar %s on %s failed: %s", variable, channel, exc)

    # ------------------------------------------------------------------ queries
    def is_ready(self) -> bool:
        return self.ready and self.ami.connected

    def degraded(self) -> str | None:
        """Why the link works at less than its configured strength, if it does (/readyz)."""
        if not isinstance(self.ami, AmiPool) or not self.ami.sessions:
            return None
        down = len(self.ami.sessions) - self.ami.action_sessions_up
        if not down:
            return None
        return (f"{down} of {len(self.ami.sessions)} AMI action sessions down: "
                "their actions go through the event session")

    def require_ready(self) -> None:
        if not self.is_ready():
            raise PbxUnavailable("the PBX is not connected")

    def live_calls(self) -> int:
        return len(self.tracker.calls)

    def calls_for(self, extensions: Iterable[str]) -> list[Call]:
        """The live calls any of these extension numbers takes part in, oldest first."""
        seen: dict[str, Call] = {}
        for number in extensions:
            for call in self.tracker.calls_of(number):
                seen.setdefault(call.linkedid, call)
        return sorted(seen.values(), key=lambda c: (c.published, c.linkedid))

    def call(self, call_id: str) -> Call | None:
        """The live call with this public id."""
        return self.tracker.call(call_id)

    @staticmethod
    def view_extension(call: Call, view_id: str) -> str | None:
        """The extension number whose view of the call has this id."""
        for number, vid in call.view_ids.items():
            if vid == view_id:
                return number
        return None

    def render(self, call: Call, extension: str, **shown: Any) -> dict[str, Any]:
        """The call as PhoneCall JSON (calls/render.py; ``shown``: its keywords)."""
        return render_call(self.tracker, call, extension, **shown)
