"""The composition root: settings -> storage -> PBX link -> features -> HTTP app.

`run` is what ``pbx-bridge serve`` does (`register` adds the command): load the
settings, refuse a demo secret, open the database (never migrating it), build the
`Services` (the PBX link and the features plugged into it), the aiohttp app over them
(api/app.py), and serve it on the hardened listener (api/listener.py) until SIGTERM or
SIGINT (the listener closes at once, so new connections are refused; requests in flight
get ``http.shutdown_timeout`` seconds to finish; then the AMI link logs off). SIGHUP
reloads the TLS certificate and key, ``[logging] level`` from the config file, and the
directory from the database, keeping the AMI link (`_reload`). Recordings in progress are
Asterisk's (MixMonitor) and keep running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pbx_bridge.calls.tracker import Tracker
from pbx_bridge.commands import add_config_option
from pbx_bridge.config import ConfigError, PbxNodeSettings, Settings, load_settings
from pbx_bridge.core.link import PbxLink
from pbx_bridge.core.nodes import NodeIdentity, Nodes
from pbx_bridge.core.quiet import Quiet
from pbx_bridge.dialing.service import DialingFeature
from pbx_bridge.directory.models import Extension
from pbx_bridge.directory.store import Directory, Migrate
from pbx_bridge.events.feature import EventsFeature
from pbx_bridge.holding.feature import HoldingFeature
from pbx_bridge.logs import set_level, setup_logging
from pbx_bridge.nodes.node import (
    PbxNode,
    build_link,
    devices_of_node,
    extensions_of_node,
    node_features,
    warn_unknown,
)
from pbx_bridge.pbx.ami import AmiClient
from pbx_bridge.recording.feature import RecordingFeature
from pbx_bridge.recordings.feature import CatalogNode, RecordingsCatalog
from pbx_bridge.secret_check import refused_secret
from pbx_bridge.storage.coordination import Coordination
from pbx_bridge.storage.serve_lock import one_serve_per_file
from pbx_bridge.stream.hub import StreamHub
from pbx_bridge.webhooks.service import Webhooks

if TYPE_CHECKING:
    from pbx_bridge.api.listener import HttpService

__all__ = ["Counters", "Services", "register", "run", "serve"]

log = logging.getLogger("pbx_bridge.serve")
_api_log = logging.getLogger("pbx_bridge.api")
_FLUSH_LIMIT = 5.0  # seconds a graceful stop waits for queued catalog rows and events


@dataclass(frozen=True)
class Counters:
    """The running service's counters, as /metrics shows them."""

    recordings_started: int
    recordings_failed: int
    recordings_stopped: int
    resyncs: int


class Services:
    """What runs behind the HTTP app: the PBX link and its features, one lifetime
    (`start` / `close`), and the watch that hands directory changes made by another
    process (``pbx-bridge directory load`` while the service runs) to them."""

    def __init__(
        self,
        settings: Settings,
        directory: Directory,
        *,
        ami: AmiClient | None = None,
        clock: Callable[[], float] = time.time,
        amis: Mapping[str, AmiClient] | None = None,
    ) -> None:
        """``ami`` (the first node's) or ``amis`` (by node name): clients made elsewhere
        (tests); otherwise each node's from its settings."""
        self.settings = settings
        self.directory = directory
        # Replicas on one PostgreSQL order their work through its locks (docs/design.md).
        self.coordination = Coordination.for_database(directory.database.url)
        node_settings = settings.nodes()
        self.node_names = {n.name for n in node_settings}
        given = dict(amis or {})
        if ami is not None:
            given[node_settings[0].name] = ami
        parts = [self._node_parts(n, i == 0, given.get(n.name), clock)
                 for i, n in enumerate(node_settings)]
        self.link = parts[0][1]
        self.recording = parts[0][3]
        # The shared features hear every node's link (docs/design.md, "Several PBX
        # nodes"). After the recording feature: the catalog reads the marks it leaves.
        # Requests in flight (the API counts them): the catalog's and the events' writes
        # wait for none, [database] write_delay at most (core/quiet.py, issue 15).
        self.quiet = Quiet()
        self.recordings = RecordingsCatalog(
            [CatalogNode(name, link, recording.origin_of, n.recordings)
             for (name, link, _, recording), n in zip(parts, node_settings, strict=True)],
            directory, settings.recordings, clock=clock, coordination=self.coordination,
            quiet=self.quiet, write_delay=settings.database.write_delay,
        )
        # After the catalog: it hears the rows the catalog saved.
        self.events = EventsFeature([(name, link) for name, link, _, _ in parts], directory,
                                    settings, self.recordings, clock=clock,
                                    quiet=self.quiet)
        self.webhooks = Webhooks(directory.database, settings.events, self.events.store,
                                 clock=clock)
        self.events.sinks.append(self.webhooks)
        self.stream = StreamHub(self.events.store, settings.events.stream_queue,
                                settings.events.stream_poll_interval)
        self.events.sinks.append(self.stream)  # GET /uapi/events
        # After the catalog and events, as before; click-to-call hears OriginateResponse.
        self.nodes: Nodes[PbxNode] = Nodes([
            PbxNode(name, link, identity, recording,
                    HoldingFeature(link, directory, settings),
                    DialingFeature(link, directory, settings, clock=clock,
                                   identity=identity))
            for name, link, identity, recording in parts
        ])
        self.holding = self.nodes.first.holding
        self.dialing = self.nodes.first.dialing
        self._watcher: asyncio.Task[None] | None = None
        self.known_devices: dict[str, Extension] = {}  # the device map the link was given

    def _node_parts(
        self, node: PbxNodeSettings, first: bool, ami: AmiClient | None,
        clock: Callable[[], float],
    ) -> tuple[str, PbxLink, NodeIdentity, RecordingFeature]:
        def devices() -> dict[str, str]:
            return devices_of_node(self.directory.extensions_by_device(), node.name,
                                   first=first)

        def extensions() -> dict[str, Extension]:
            return extensions_of_node(self.directory.extensions_by_device(), node.name,
                                      first=first)

        link = build_link(node, devices, ami=ami, clock=clock)
        identity, recording = node_features(node.name, link, self.directory, self.settings,
                                            clock, self.coordination, extensions)
        return node.name, link, identity, recording

    async def start(self) -> None:
        await self.webhooks.start()
        for node in self.nodes.all:
            await node.link.start()
        self.recordings.start()
        self._watcher = asyncio.create_task(self._watch_directory())

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        self.quiet.close()  # what is queued is written now, before the links' tasks go
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_FLUSH_LIMIT):
                await self.recordings.drained()
                await self.events.drained()
        await self.recordings.close()
        for node in reversed(self.nodes.all):
            await node.link.close()
        await self.events.drained()
        await self.webhooks.close()
        await self.coordination.close()

    def reload_directory(self) -> None:
        """Hand the directory as the database has it now to the link and its features
        (re-labelled channels, the AstDB recording policy), even if no device changed."""
        self.known_devices = dict(self.directory.extensions_by_device())
        warn_unknown(self.known_devices, self.node_names)
        for node in self.nodes.all:
            node.link.reload_devices()

    async def _watch_directory(self) -> None:
        self.known_devices = dict(self.directory.extensions_by_device())
        seen = self.directory.rows.snapshot()
        while True:
            await asyncio.sleep(self.settings.database.directory_poll)
            try:
                # The snapshot object changes only when the stored rows did: comparing
                # 50,000 devices every poll is left for when something was written.
                if (snapshot := self.directory.rows.snapshot()) is seen:
                    continue
                current = self.directory.extensions_by_device()
                if current != self.known_devices:
                    _api_log.info("directory changed: %d devices now", len(current))
                    self.reload_directory()
                seen = snapshot
            except Exception:  # a locked or briefly broken database: try again later
                _api_log.warning("could not check the directory for changes", exc_info=True)

    # Shorthands for tests, benches and /metrics.
    @property
    def tracker(self) -> Tracker:
        return self.link.tracker

    @property
    def ami(self) -> AmiClient:
        return self.link.ami

    @property
    def ready(self) -> bool:
        return self.link.ready

    @ready.setter
    def ready(self, value: bool) -> None:
        self.link.ready = value

    @property
    def metrics(self) -> Counters:
        counts = self.recording.counts
        return Counters(counts.started, counts.failed, counts.stopped, self.link.resyncs)


def run(config: str | None, *, demo: bool) -> int:
    """``pbx-bridge serve``: exit status 0 after a graceful stop, 2 on a refused secret."""
    settings = load_settings(config)
    refused = refused_secret(settings, demo=demo)
    if refused:
        print(f"pbx-bridge serve: {refused}", file=sys.stderr)
        return 2
    setup_logging(settings)
    # Never migrates: refuses an unmigrated or outdated schema (`pbx-bridge db upgrade`).
    directory = Directory.from_settings(settings, migrate=Migrate.NOTHING)
    try:
        with one_serve_per_file(directory.database.url):
            asyncio.run(serve(settings, directory, config=config))
    finally:
        directory.close()
    log.info("stopped")
    return 0


def _reload(config: str | None, service: HttpService, services: Services) -> None:
    """SIGHUP: the TLS pair, the log level, the directory; the AMI link stays up."""
    service.reload_tls()
    try:
        level = load_settings(config).logging
    except ConfigError as exc:  # a half-edited file: keep what runs
        log.error("SIGHUP: kept the current log level: %s", exc)
    else:
        if set_level(level):
            log.warning("SIGHUP: log level now %s", level.level)
    try:
        services.reload_directory()
    except Exception:  # a locked or briefly broken database: the watch tries again
        log.warning("SIGHUP: could not reload the directory", exc_info=True)
    else:
        log.info("SIGHUP: directory reloaded: %d devices", len(services.known_devices))


async def serve(settings: Settings, directory: Directory, *, config: str | None = None) -> None:
    """Serve until SIGTERM/SIGINT; SIGHUP reloads (`_reload`) from ``config``."""
    from pbx_bridge.api.app import AccessLogger, create_app
    from pbx_bridge.api.listener import HttpService

    # Built inside the running loop: the link creates asyncio objects.
    services = Services(settings, directory)
    app = create_app(settings, directory, services)
    service = HttpService(
        app,
        settings.http,
        shutdown_timeout=settings.http.shutdown_timeout,
        access_log=logging.getLogger("pbx_bridge.access"),
        access_log_class=AccessLogger,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _reload, config, service, services)
    try:
        await service.start()
        log.info(
            "serving on %s (AMI %s, database %s)",
            service.url,
            ", ".join(f"{n.name} {n.host}:{n.port}" for n in settings.nodes()),
            directory.path,
        )
        await stop.wait()
        log.info("shutting down")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await service.close()


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the HTTP API and the AMI connection",
        description=(
            "Run the UAPI PhoneCalls HTTP service next to Asterisk: connect to AMI, follow "
            "the calls, serve /uapi/phoneCalls, /healthz, /readyz, /metrics and "
            "/oauth/token on http.host:http.port (HTTPS with http.tls_cert/tls_key). Stops "
            "gracefully on SIGTERM/SIGINT (requests in flight get http.shutdown_timeout "
            "seconds); SIGHUP reloads the TLS certificate, the log level and the directory "
            "without dropping the AMI link."
        ),
    )
    add_config_option(serve)
    serve.add_argument(
        "--demo",
        action="store_true",
        help="accept an empty, placeholder or demo AMI secret (never on a shared machine)",
    )
    serve.set_defaults(func=lambda args: run(args.config, demo=args.demo))
