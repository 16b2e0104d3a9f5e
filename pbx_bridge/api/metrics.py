"""Prometheus metrics, one registry per app (so tests and several apps never mix).

- ``pbx_bridge_http_requests_total{method,route,status}``: answered requests; ``route``
  is the route's template (``/uapi/phoneCalls/{userId}/{extension}``), never the
  request's path, so ids and tokens cannot blow up the label space; unmatched paths are
  ``route="unmatched"``.
- ``pbx_bridge_http_request_duration_seconds{route}``: how long answers took.
- ``pbx_bridge_oauth_client_auth_failures_total{reason}``: failed client authentications
  at the OAuth endpoints; ``reason`` is one of a fixed few (``unknown_client``,
  ``wrong_secret``, ``app_disabled``, ``malformed``, ``locked_out``), never a client id.
- Read at scrape time from the bridge: ``pbx_bridge_ami_connected``, ``pbx_bridge_ready``,
  ``pbx_bridge_live_calls``, ``pbx_bridge_recordings_{started,failed,stopped}_total``,
  ``pbx_bridge_resyncs_total``.
- The *1 recording policy in AstDB (recording/astdb.py): ``pbx_bridge_astdb_policy_synced``
  (1 once AstDB holds the directory's policy since the last connect) and
  ``pbx_bridge_astdb_policy_writes_total{action="put"|"del"}`` (keys written by difference).
- ``pbx_bridge_recordings_swept_total{state}``: recordings (file and row) the retention
  sweep deleted, by the state they had (``completed``, ``failed``, ``missing``);
  ``pbx_bridge_recordings_swept_bytes_total``: the bytes of their files.
- The event stream (pbx_bridge/stream/): ``pbx_bridge_event_stream_clients`` (connected
  now), ``pbx_bridge_event_stream_cut_total`` (cut for falling ``stream_queue`` events
  behind), ``pbx_bridge_event_stream_queued`` (events waiting in their queues).
- Webhooks (pbx_bridge/webhooks/): ``pbx_bridge_webhook_{attempts,delivered,failed,dead}_total``
  and ``pbx_bridge_webhook_delivery_lag_seconds`` (outbox write to 2xx, a histogram).

Who may read them (``[metrics] auth``): ``admin`` (the default) = a bearer token of an
admin user's app, as on the UAPI routes (401 without a valid token, 403
``access_denied`` with another user's: the figures cover every tenant); ``none`` =
anyone who reaches the port.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from pbx_bridge.api.auth import authenticate
from pbx_bridge.api.context import DIRECTORY, SETTINGS
from pbx_bridge.api.errors import ApiError, Handler
from pbx_bridge.core.link import PbxLink
from pbx_bridge.core.nodes import Nodes
from pbx_bridge.nodes.node import PbxNode
from pbx_bridge.recording.feature import RecordingFeature
from pbx_bridge.recordings.feature import RecordingsCatalog
from pbx_bridge.stream.hub import StreamHub
from pbx_bridge.webhooks.sender import Sender

__all__ = ["REGISTRY", "Metrics", "metrics_handler"]

REGISTRY = web.AppKey("metrics", object)  # holds a Metrics
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _BridgeCollector(Collector):
    def __init__(
        self, link: PbxLink, recording: RecordingFeature, recordings: RecordingsCatalog | None
    ) -> None:
        self._link = link
        self._recording = recording
        self._recordings = recordings

    def collect(self) -> Iterator[Metric]:
        link = self._link
        yield GaugeMetricFamily(
            "pbx_bridge_ami_connected",
            "1 while the AMI connection is up and logged in",
            value=1.0 if link.ami.connected else 0.0,
        )
        yield GaugeMetricFamily(
            "pbx_bridge_ready",
            "1 while AMI is connected and the call state is resynced",
            value=1.0 if link.is_ready() else 0.0,
        )
        yield GaugeMetricFamily(
            "pbx_bridge_live_calls", "live calls the tracker follows", value=link.live_calls()
        )
        counts = self._recording.counts
        for name, doc, value in (
            ("recordings_started", "recordings started through the API", counts.started),
            ("recordings_failed", "recording starts that failed", counts.failed),
            ("recordings_stopped", "recordings stopped through the API", counts.stopped),
            ("resyncs", "state resyncs from Asterisk's channel list", link.resyncs),
        ):
            yield CounterMetricFamily(f"pbx_bridge_{name}", doc, value=value)
        yield from _astdb_policy(self._recording)
        if self._recordings is not None:
            yield from _swept(self._recordings)


class _NodeCollector(Collector):
    """The same figures by PBX node (label ``node``, the [[pbx]] name; "pbx" for the one
    node of [ami]); the unlabelled families above are the first node's."""

    def __init__(self, nodes: Nodes[PbxNode]) -> None:
        self._nodes = nodes

    def collect(self) -> Iterator[Metric]:
        gauges = {
            "ami_connected": "1 while the node's AMI connection is up and logged in",
            "ready": "1 while the node is ready (/readyz/{node})",
            "live_calls": "live calls the node's tracker follows",
        }
        counters = {
            "recordings_started": "recordings started through the API on the node",
            "recordings_failed": "recording starts on the node that failed",
            "recordings_stopped": "recordings stopped through the API on the node",
            "resyncs": "state resyncs from the node's channel list",
            "ami_events": "AMI events the node's link handed to its tracker",
        }
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {
            **{k: GaugeMetricFamily(f"pbx_bridge_node_{k}", doc, labels=("node",))
               for k, doc in gauges.items()},
            **{k: CounterMetricFamily(f"pbx_bridge_node_{k}", doc, labels=("node",))
               for k, doc in counters.items()},
        }
        for node in self._nodes.all:
            link, counts = node.link, node.recording.counts
            for key, value in (
                ("ami_connected", float(link.ami.connected)),
                ("ready", float(self._nodes.is_ready(node))),
                ("live_calls", link.live_calls()),
                ("recordings_started", counts.started),
                ("recordings_failed", counts.failed),
                ("recordings_stopped", counts.stopped),
                ("resyncs", link.resyncs),
                ("ami_events", link.events),
            ):
                families[key].add_metric((node.name,), value)
        yield from families.values()


def _astdb_policy(recording: RecordingFeature) -> Iterator[Metric]:
    """The *1 policy's sync to AstDB (recording/astdb.py)."""
    policy = recording.policy
    yield GaugeMetricFamily(
        "pbx_bridge_astdb_policy_synced",
        "1 once AstDB holds the directory's recording policy (since the last connect)",
        value=1.0 if policy.synced.is_set() else 0.0,
    )
    writes = CounterMetricFamily(
        "pbx_bridge_astdb_policy_writes",
        "AstDB recording policy keys written (put) and deleted (del), by difference",
        labels=("action",),
    )
    writes.add_metric(("put",), policy.counts.puts)
    writes.add_metric(("del",), policy.counts.deletes)
    yield writes


def _swept(recordings: RecordingsCatalog) -> Iterator[Metric]:
    swept = CounterMetricFamily(
        "pbx_bridge_recordings_swept",
        "recordings (file and row) deleted by the retention sweep, by their state",
        labels=("state",),
    )
    for state in ("completed", "failed", "missing"):
        swept.add_metric((state,), recordings.swept.get(state, 0))
    yield swept
    yield CounterMetricFamily(
        "pbx_bridge_recordings_swept_bytes",
        "bytes of the recording files deleted by the retention sweep",
        value=recordings.swept_bytes,
    )


class _WebhookCollector(Collector):
    def __init__(self, sender: Sender) -> None:
        self._sender = sender

    def collect(self) -> Iterator[Metric]:
        counts = self._sender.counts
        for name, doc, value in (
            ("attempts", "webhook delivery attempts", counts.attempts),
            ("delivered", "webhook deliveries answered 2xx", counts.delivered),
            ("failed", "webhook attempts without a 2xx (retried, or dead)", counts.failed),
            ("dead", "webhook deliveries given up after the retry window", counts.dead),
        ):
            yield CounterMetricFamily(f"pbx_bridge_webhook_{name}", doc, value=value)
        yield from self._sender.lag.collect()


class _StreamCollector(Collector):
    def __init__(self, hub: StreamHub) -> None:
        self._hub = hub

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("pbx_bridge_event_stream_clients",
                                "clients connected to GET /uapi/events",
                                value=len(self._hub.clients))
        yield CounterMetricFamily("pbx_bridge_event_stream_cut",
                                  "stream clients cut for falling too far behind",
                                  value=self._hub.cut_total)
        yield GaugeMetricFamily("pbx_bridge_event_stream_queued",
                                "events waiting in the stream clients' queues",
                                value=self._hub.queued())


class Metrics:
    def __init__(
        self,
        link: PbxLink,
        recording: RecordingFeature,
        recordings: RecordingsCatalog | None = None,
        sender: Sender | None = None,
        stream: StreamHub | None = None,
        *,
        nodes: Nodes[PbxNode] | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "pbx_bridge_http_requests",
            "HTTP requests answered, by route template and status",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.duration = Histogram(
            "pbx_bridge_http_request_duration_seconds",
            "time to answer HTTP requests, by route template",
            ("route",),
            registry=self.registry,
        )
        self.client_auth_failures = Counter(
            "pbx_bridge_oauth_client_auth_failures",
            "failed client authentications at the OAuth endpoints, by reason "
            "(locked_out: refused while locked out, the secret not looked at)",
            ("reason",),
            registry=self.registry,
        )
        self.registry.register(_BridgeCollector(link, recording, recordings))
        if nodes is not None:
            self.registry.register(_NodeCollector(nodes))
        if sender is not None:
            self.registry.register(_WebhookCollector(sender))
        if stream is not None:
            self.registry.register(_StreamCollector(stream))

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away first (nginx's convention)
            raise
        finally:
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            method = request.method if request.method in _METHODS else "other"
            self.requests.labels(method, route, str(status)).inc()
            self.duration.labels(route).observe(time.perf_counter() - start)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _check_reader(request: web.Request) -> None:
    """401/403 unless ``[metrics] auth`` lets this request read the metrics."""
    if request.app[SETTINGS].metrics.auth == "none":
        return
    principal = authenticate(request, request.app[DIRECTORY])
    if principal.role != "admin":
        raise ApiError(403, "access_denied", "the metrics need an admin token")


async def metrics_handler(request: web.Request) -> web.Response:
    _check_reader(request)
    metrics: Metrics = request.app[REGISTRY]  # type: ignore[assignment]
    return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
