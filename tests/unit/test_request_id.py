"""Request ids (docs/contract.md, 5.4): each answer's X-Request-Id is new, chosen by the
service (never the client's), and is the request_id of the JSON log records."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from pbx_bridge.config import Settings
from pbx_bridge.logs import setup_logging
from pbx_bridge.request_context import current_request_id
from tests.unit.api_support import Api


@pytest.fixture
async def api(aiohttp_client, tmp_path) -> Api:
    return await Api.start(aiohttp_client, tmp_path)


async def test_every_answer_has_its_own_request_id(api: Api) -> None:
    seen = set()
    for path in ("/healthz", "/no/such/route", "/uapi/phoneCalls/@me/0003*210"):
        r = await api.client.get(path, headers={"X-Request-Id": "client-chosen"})
        request_id = r.headers["X-Request-Id"]
        assert re.fullmatch(r"[0-9a-f]{16}", request_id), request_id
        seen.add(request_id)
    assert len(seen) == 3


def test_json_log_records_carry_the_request_id(monkeypatch) -> None:
    # (The access log line of a real `serve`: tests/reliability/test_service_signals.py.)
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    setup_logging(Settings(logging={"format": "json", "level": "INFO"}))
    try:
        log = logging.getLogger("pbx_bridge.test")
        log.info("outside any request")
        token = current_request_id.set("0123456789abcdef")
        try:
            log.info("for a request")
        finally:
            current_request_id.reset(token)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    outside, inside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert "request_id" not in outside
    assert inside["request_id"] == "0123456789abcdef" and inside["level"] == "INFO"
