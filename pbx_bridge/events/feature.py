"""The events feature, plugged into the PBX link (core/feature.py's hooks) and the
recordings catalog (its ``on_saved`` listeners).

Producers (calls.py, recordings.py) are pure; here each event gets its sequence number
(one past the history's last, so it keeps growing across restarts) and its id, then
events are written to the history in order, one batch per transaction together with
their outbox rows (the `Sink`'s ``also``), off the event loop. Only after the write
are sinks told (`written`): nothing is delivered that is not stored first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import Connection

from pbx_bridge.calls.tracker import Call
from pbx_bridge.config import Settings
from pbx_bridge.core.feature import Event as AmiEvent
from pbx_bridge.core.feature import Feature
from pbx_bridge.core.link import PbxLink
from pbx_bridge.directory.store import Directory
from pbx_bridge.events.calls import CallEvents
from pbx_bridge.events.model import Draft, Event, event_id
from pbx_bridge.events.recordings import RecordingEvents
from pbx_bridge.events.store import EventStore
from pbx_bridge.recordings.catalog import RecordingRow
from pbx_bridge.recordings.feature import RecordingsCatalog

__all__ = ["EventsFeature", "Sink"]

log = logging.getLogger("pbx_bridge.events")


class Sink(Protocol):
    """Who is told about events: ``also`` writes in the events' own transaction (the
    outbox), ``written`` runs on the loop after it committed."""

    def also(self, conn: Connection, batch: list[Event]) -> None: ...

    def written(self, batch: list[Event]) -> None: ...


class EventsFeature(Feature):
    def __init__(
        self,
        link: PbxLink,
        directory: Directory,
        settings: Settings,
        recordings: RecordingsCatalog,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.link = link
        self.directory = directory
        self.settings = settings
        self.store = EventStore(directory.database)
        self.sinks: list[Sink] = []
        self._clock = clock
        self._seq = self.store.last_seq()
        self._queue: list[Event] = []
        self._writing = asyncio.Lock()
        self._orgs: dict[str, tuple[int | None, str | None]] = {}
        # extension -> its owner for the PhoneCall's link. Like _orgs, kept until the
        # directory changes: a render per view and event must not read the database.
        self._owners: dict[str, int | str] = {}
        since = clock() - settings.events.history_seconds
        self.calls = CallEvents(link.tracker, self._render,
                                announced=self._announced(since))
        self.recordings = RecordingEvents(settings.http.public_base_url,
                                          recordings.store.unfinished())
        recordings.on_saved.append(self._on_recording)
        link.add_feature(self)

    def _announced(self, since: float) -> dict[tuple[str, str], str]:
        return {k: v for k, v in self.store.announced_calls(since).items() if v != "hangup"}

    # ------------------------------------------------------------------ hooks
    def on_event(self, ev: AmiEvent) -> None:
        self.emit(self.calls.on_event(ev))

    def on_snapshot(self, rows: list[AmiEvent]) -> None:
        self.emit(self.calls.on_snapshot(self._clock()))

    def on_directory(self) -> None:
        self._orgs.clear()
        self._owners.clear()

    def _on_recording(self, row: RecordingRow) -> None:
        self.emit(self.recordings.on_row(row, self._clock()))

    # ------------------------------------------------------------------ numbering, writing
    def emit(self, drafts: list[Draft]) -> None:
        if not drafts:
            return
        for d in drafts:
            self._seq += 1
            org, _name = self._org(d.extension)
            self._queue.append(Event(
                seq=self._seq, id=event_id(self._seq), type=d.type, time=d.time,
                organization=org, extension=d.extension, phone_call_id=d.phone_call_id,
                data=d.data,
            ))
        self.link.spawn(self._flush())

    async def _flush(self) -> None:
        async with self._writing:  # one writer: batches land in sequence order
            batch, self._queue = self._queue, []
            if not batch:
                return
            await self._write(batch)
        for sink in self.sinks:
            sink.written(batch)

    async def _write(self, batch: list[Event]) -> None:
        delay = 0.1
        while True:  # a briefly broken database must not lose the events
            try:
                await asyncio.to_thread(self.store.append, batch, self._also)
                return
            except Exception:
                log.exception("could not store %d events; retrying", len(batch))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _also(self, conn: Connection, batch: list[Event]) -> None:
        for sink in self.sinks:
            sink.also(conn, batch)

    async def drained(self) -> None:
        """Until every event numbered so far is stored (tests, shutdown)."""
        while self._queue or self._writing.locked():
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------------ rendering
    def _org(self, number: str) -> tuple[int | None, str | None]:
        if number not in self._orgs:
            ext = self.directory.extension(number)
            org = self.directory.organization_of_extension(ext) if ext is not None else None
            self._orgs[number] = (org.id, org.name) if org is not None else (None, None)
        return self._orgs[number]

    def _render(self, call: Call, number: str) -> dict[str, Any]:
        """The PhoneCall as the extension's organization sees it: its own views only."""
        org, name = self._org(number)
        owner = self._owners.get(number)
        if owner is None:
            ext = self.directory.extension(number)
            owner = self._owners[number] = ext.owner if ext is not None else "@owner"
        base = self.settings.http.public_base_url
        return self.link.render(
            call, number, visible=lambda other: self._org(other)[0] == org,
            owner_id=str(org) if org is not None else None, owner_name=name,
            link=f"{base}/uapi/phoneCalls/{owner}/{number}/{call.id}",
        )
