"""The events feature, plugged into every PBX node's link (core/feature.py's hooks: a
`NodeCalls` per node, on that node's tracker) and the recordings catalog (its
``on_saved`` listeners). Each event is stored with the node whose AMI events made it.

Producers (calls.py, recordings.py) are pure and key each event by what Asterisk sent
(keys.py); here events are written to the history in order, one batch per transaction
together with their outbox rows (the `Sink`'s ``also``), off the event loop. The history
numbers them (its sequence, shared by every replica on the database) and stores each
key once: a replica that hears an AMI event another replica already stored the event
of writes nothing for it. Only after the write are sinks told (`written`, the events
this bridge stored): nothing is delivered that is not stored first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from sqlalchemy import Connection

from pbx_bridge.calls.tracker import Call
from pbx_bridge.config import Settings
from pbx_bridge.core.feature import Event as AmiEvent
from pbx_bridge.core.feature import Feature
from pbx_bridge.core.link import PbxLink
from pbx_bridge.core.quiet import Quiet, QuietWriter
from pbx_bridge.directory.store import Directory
from pbx_bridge.events.calls import CallEvents
from pbx_bridge.events.model import Draft, Event
from pbx_bridge.events.recordings import RecordingEvents
from pbx_bridge.events.store import EventStore
from pbx_bridge.recordings.catalog import RecordingRow
from pbx_bridge.recordings.feature import RecordingsCatalog

__all__ = ["EventsFeature", "NodeCalls", "Sink"]

log = logging.getLogger("pbx_bridge.events")


class Sink(Protocol):
    """Who is told about events: ``also`` writes in the events' own transaction (the
    outbox), ``written`` runs on the loop after it committed."""

    def also(self, conn: Connection, batch: list[Event]) -> None: ...

    def written(self, batch: list[Event]) -> None: ...


class EventsFeature:
    def __init__(
        self,
        links: Sequence[tuple[str, PbxLink]],
        directory: Directory,
        settings: Settings,
        recordings: RecordingsCatalog,
        *,
        clock: Callable[[], float] = time.time,
        quiet: Quiet | None = None,
    ) -> None:
        """``links``: every PBX node's (name, link), the first being the node of the
        history's events that name none. ``quiet``: a batch's write waits up to
        ``[database] write_delay`` for no request in flight (core/quiet.py); events emitted
        meanwhile join it."""
        self.directory = directory
        self.settings = settings
        self.store = EventStore(directory.database)
        self.sinks: list[Sink] = []
        self._clock = clock
        self._queue: list[Event] = []
        # Events are stored in batches by one writer, when no request is in flight.
        self._writer = QuietWriter(quiet or Quiet(), settings.database.write_delay,
                                   self._flush_batch)
        self._orgs: dict[str, tuple[int | None, str | None]] = {}
        # extension -> its owner for the PhoneCall's link. Like _orgs, kept until the
        # directory changes: a render per view and event must not read the database.
        self._owners: dict[str, int | str] = {}
        since = clock() - settings.events.history_seconds
        self.nodes = [NodeCalls(self, name, link, since, first=i == 0)
                      for i, (name, link) in enumerate(links)]
        self._links = dict(links)
        self.recordings = RecordingEvents(settings.http.public_base_url,
                                          recordings.store.unfinished())
        recordings.on_saved.append(self._on_recording)

    # The first node's, as code and tests written for one node know them.
    @property
    def link(self) -> PbxLink:
        return self.nodes[0].link

    @property
    def calls(self) -> CallEvents:
        return self.nodes[0].calls

    def on_event(self, ev: AmiEvent) -> None:
        """The first node's hook (tests feed it directly)."""
        self.nodes[0].on_event(ev)

    def _on_recording(self, row: RecordingRow) -> None:
        self.emit(self.recordings.on_row(row, self._clock()), row.node)

    # ------------------------------------------------------------------ writing
    def emit(self, drafts: list[Draft], node: str | None = None) -> None:
        """``node``: the PBX node whose AMI events made them (None: the first)."""
        if not drafts:
            return
        for d in drafts:
            org, _name = self._org(d.extension)
            self._queue.append(Event(  # numbered by the history when stored
                seq=0, id="", type=d.type, time=d.time, organization=org,
                extension=d.extension, phone_call_id=d.phone_call_id, data=d.data, key=d.key,
                node=node,
            ))
        link = self._links.get(node) if node is not None else None
        self._writer.due((link or self.link).spawn)

    async def _flush_batch(self) -> None:
        # One writer: batches land, and reach the sinks, in order.
        batch, self._queue = self._queue, []
        if not batch:
            return
        stored = await self._write(batch)
        if stored:
            for sink in self.sinks:
                sink.written(stored)

    async def _write(self, batch: list[Event]) -> list[Event]:
        delay = 0.1
        while True:  # a briefly broken database must not lose the events
            try:
                return await asyncio.to_thread(self.store.append, batch, self._also)
            except Exception:
                log.exception("could not store %d events; retrying", len(batch))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _also(self, conn: Connection, batch: list[Event]) -> None:
        for sink in self.sinks:
            sink.also(conn, batch)

    async def drained(self) -> None:
        """Until every event emitted so far is stored (tests, shutdown)."""
        while self._queue or self._writer.lock.locked():
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------------ rendering
    def forget_organizations(self) -> None:
        """The directory changed: extensions' organizations and owners are read again."""
        self._orgs.clear()
        self._owners.clear()

    def _org(self, number: str) -> tuple[int | None, str | None]:
        if number not in self._orgs:
            ext = self.directory.extension(number)
            org = self.directory.organization_of_extension(ext) if ext is not None else None
            self._orgs[number] = (org.id, org.name) if org is not None else (None, None)
        return self._orgs[number]

    def render(self, link: PbxLink, call: Call, number: str) -> dict[str, Any]:
        """The PhoneCall (of ``link``'s tracker) as the extension's organization sees
        it: its own views only."""
        org, name = self._org(number)
        owner = self._owners.get(number)
        if owner is None:
            ext = self.directory.extension(number)
            owner = self._owners[number] = ext.owner if ext is not None else "@owner"
        base = self.settings.http.public_base_url
        return link.render(
            call, number, visible=lambda other: self._org(other)[0] == org,
            owner_id=str(org) if org is not None else None, owner_name=name,
            link=f"{base}/uapi/phoneCalls/{owner}/{number}/{call.id}",
        )


class NodeCalls(Feature):
    """One PBX node's call events, plugged into that node's link: the views of its
    tracker's calls, announced once (a restarted bridge reads back what the history
    holds of this node's calls: a resync must not say "hangup" for another node's)."""

    def __init__(self, owner: EventsFeature, name: str, link: PbxLink, since: float, *,
                 first: bool) -> None:
        self.name = name
        self.link = link
        self._owner = owner
        announced, anchors = owner.store.announced_calls(since, name, first=first)
        self.calls = CallEvents(
            link.tracker, self._render,
            announced={k: v for k, v in announced.items() if v != "hangup"}, anchors=anchors,
        )
        link.add_feature(self)

    def _render(self, call: Call, number: str) -> dict[str, Any]:
        return self._owner.render(self.link, call, number)

    def on_event(self, ev: AmiEvent) -> None:
        self._owner.emit(self.calls.on_event(ev), self.name)

    def on_snapshot(self, rows: list[AmiEvent]) -> None:
        self._owner.emit(self.calls.on_snapshot(self._owner._clock()), self.name)

    def on_directory(self) -> None:
        self._owner.forget_organizations()
        for node in self._owner.nodes:  # organizations are shared by every node's renders
            node.calls.forget_renders()
