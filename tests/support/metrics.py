"""Reading the bridge's /metrics in tests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def requests_served(metrics: str) -> tuple[float, dict[str, float]]:
    """Requests answered, in all and by status. Parsed with prometheus_client's own
    parser: route labels hold braces (``/uapi/phoneCalls/{userId}``), which a regex on
    ``{...}`` silently skips, and with them any 5xx on those routes."""
    by_status: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics):
        if family.name != "pbx_bridge_http_requests":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                status = sample.labels.get("status", "?")
                by_status[status] = by_status.get(status, 0.0) + sample.value
    return sum(by_status.values()), by_status
