"""Hostile clients at the connection level (issue 9, items 2, 6, 11 and the minor ones),
against the app served as `pbx-bridge serve` serves it (pbx_bridge.api.listener.HttpService
on a real loopback socket).

The bridge behind it is not connected to a PBX: everything here is decided before a
request could reach AMI (/healthz answers 200 whatever the PBX does, the PhoneCalls
routes answer 503 `pbx_unavailable` once a request is authenticated and valid).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pbx_bridge.api.app import AccessLogger, create_app
from pbx_bridge.api.listener import HttpService
from pbx_bridge.config import Settings
from pbx_bridge.server import Services
from tests.reliability.support import report, summary
from tests.unit.api_support import Apps, make_directory, make_settings

A = "0003*210"
SECRET_MARK = "s3cr3t-T0KEN-that-must-not-echo"


@dataclass
class Served:
    service: HttpService
    settings: Settings
    apps: Apps
    http: aiohttp.ClientSession

    @property
    def base(self) -> str:
        return self.service.url

    def token(self, who: str = "john") -> str:
        return self.apps.token[who]

    async def raw(self, data: bytes, timeout: float = 10.0) -> bytes:
        """Bytes on a fresh socket; everything the server sends until it closes."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.service.port)
        try:
            with contextlib.suppress(ConnectionError):
                writer.write(data)
                await writer.drain()
            async with asyncio.timeout(timeout):
                return await reader.read()
        finally:
            writer.transport.abort()


@contextlib.asynccontextmanager
async def served(tmp_path: Path, **http: Any) -> AsyncIterator[Served]:
    settings = make_settings(tmp_path, **http)
    directory = make_directory(settings)
    apps = Apps.create(directory)
    app = create_app(settings, directory, Services(settings, directory))
    service = HttpService(app, settings.http, host="127.0.0.1", port=0,
                          access_log_class=AccessLogger)
    await service.start()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            yield Served(service, settings, apps, session)
    finally:
        await service.close()
        directory.close()


def _status(out: bytes) -> int:
    assert out.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")), out[:200]
    return int(out.split(b" ", 2)[1])


def _json_body(out: bytes) -> dict:
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return json.loads(body)


# --------------------------------------------------------------------------- item 2


async def _closed_within(reader: asyncio.StreamReader, timeout: float) -> bytes:
    async with asyncio.timeout(timeout):
        return await reader.read()


async def test_silent_and_half_sent_connections_are_closed_while_others_are_served(
    tmp_path: Path,
) -> None:
    """500 connections that send nothing and one that sends half a request line are
    closed after `http.header_timeout`; /healthz is answered meanwhile."""
    header_timeout = 2.0
    async with served(tmp_path, header_timeout=header_timeout, keepalive_timeout=30.0,
                      max_connections=600) as s:
        t0 = time.monotonic()
        silent = [await asyncio.open_connection("127.0.0.1", s.service.port)
                  for _ in range(500)]
        half_r, half_w = await asyncio.open_connection("127.0.0.1", s.service.port)
        half_w.write(f"GET /uapi/phoneCalls/@me/{A}?accessRequestToken={SECRET_MARK}".encode())
        await half_w.drain()
        opened = time.monotonic() - t0
        # While they are open, other clients are served.
        latencies = []
        while time.monotonic() - t0 < header_timeout * 0.75:
            t1 = time.monotonic()
            async with s.http.get(s.base + "/healthz") as r:
                assert r.status == 200
            latencies.append(time.monotonic() - t1)
        assert s.service.server.open_connections >= 501
        # Then every one of them is closed by the server.
        half_out = await _closed_within(half_r, header_timeout + 10)
        outs = await asyncio.gather(*(_closed_within(r, header_timeout + 10)
                                      for r, _ in silent))
        closed_after = time.monotonic() - t0
        assert all(out == b"" for out in outs), "a silent connection got an answer"
        assert _status(half_out) == 408
        assert _json_body(half_out)["error"]["code"] == "request_timeout"
        assert SECRET_MARK.encode() not in half_out
        for _, w in silent:
            w.transport.abort()
        half_w.transport.abort()
        assert s.service.server.header_timeouts >= 501
        async with s.http.get(s.base + "/healthz") as r:
            assert r.status == 200
    report("silent_connections", silent=500, half_request_line=1,
           header_timeout_s=header_timeout, opened_in_s=round(opened, 3),
           all_closed_after_s=round(closed_after, 3), healthz_meanwhile=len(latencies),
           healthz_latency_s=summary(latencies))


async def test_headers_trickled_past_the_deadline_get_408(tmp_path: Path) -> None:
    """A client that keeps sending header bytes, slowly, is still cut at the deadline:
    the deadline runs from the start of the request, not from the last byte."""
    async with served(tmp_path, header_timeout=1.5) as s:
        reader, writer = await asyncio.open_connection("127.0.0.1", s.service.port)
        t0 = time.monotonic()
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        answer = asyncio.ensure_future(reader.read())
        for i in range(40):
            if answer.done():
                break
            with contextlib.suppress(ConnectionError):
                writer.write(f"X-Slow-{i}: v\r\n".encode())
            await asyncio.wait({answer}, timeout=0.2)
        out = await asyncio.wait_for(answer, 10)
        took = time.monotonic() - t0
        writer.transport.abort()
        assert _status(out) == 408
        assert took < 1.5 + 3.0  # cut near the deadline, not after 40 x 0.2 s


async def test_a_kept_alive_connection_is_closed_after_keepalive_timeout(
    tmp_path: Path,
) -> None:
    async with served(tmp_path, header_timeout=30.0, keepalive_timeout=1.0) as s:
        reader, writer = await asyncio.open_connection("127.0.0.1", s.service.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert _status(head) == 200
        t0 = time.monotonic()
        rest = await _closed_within(reader, 15)
        assert b"HTTP/1.1" not in rest.split(b"}", 1)[-1]  # nothing but the body
        assert time.monotonic() - t0 < 10  # the 30 s header deadline did not apply
        writer.transport.abort()


async def test_connections_over_the_cap_are_closed_and_served_again_after(
    tmp_path: Path,
) -> None:
    async with served(tmp_path, max_connections=20, header_timeout=30.0) as s:
        held = [await asyncio.open_connection("127.0.0.1", s.service.port)
                for _ in range(20)]
        await asyncio.sleep(0.2)
        assert s.service.server.open_connections == 20
        # The 21st is closed at once, without an answer.
        out = await s.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
        assert out == b""
        assert s.service.server.refused_connections >= 1
        for _, w in held:
            w.transport.abort()
        await asyncio.sleep(0.2)
        async with s.http.get(s.base + "/healthz") as r:
            assert r.status == 200


# --------------------------------------------------------------------------- item 6


def _bad_requests(token: str) -> dict[str, tuple[bytes, int]]:
    get = f"GET /uapi/phoneCalls/@me/{A} HTTP/1.1\r\nHost: x\r\n".encode()
    auth = f"Authorization: Bearer {token}\r\n".encode()
    mark = SECRET_MARK.encode()
    return {
        "request line over 8190 bytes": (
            b"GET /uapi/phoneCalls/@me/" + mark + b"1" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            431),
        "header over 8190 bytes": (get + auth + b"X-Long: " + mark + b"a" * 9000
                                   + b"\r\n\r\n", 431),
        "too many headers": (get + auth + b"".join(f"X-H{i}: {SECRET_MARK}\r\n".encode()
                                                   for i in range(200)) + b"\r\n", 431),
        "folded header": (get + b"Authorization: Bearer\r\n " + mark + b"\r\n\r\n", 400),
        "bad method": (b"G\x01T /" + mark + b" HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n",
                       400),
        "NUL in the request line": (b"GET /uapi/" + mark + b"\x00 HTTP/1.1\r\nHost: x\r\n"
                                    + auth + b"\r\n", 400),
        "control character in a header": (get + b"Authorization: Bearer " + mark
                                          + b"\x01\r\n\r\n", 400),
        "space in the URL": (b"GET /uapi/phoneCalls/@me/" + mark + b" x HTTP/1.1\r\n"
                             b"Host: x\r\n\r\n", 400),
        "bad chunk size": (f"PUT /uapi/phoneCalls/@me/{A}/ab HTTP/1.1\r\nHost: x\r\n"
                           "Content-Type: application/json\r\nTransfer-Encoding: chunked"
                           "\r\n".encode() + auth + b"\r\nzz" + mark + b"\r\n{}\r\n0\r\n\r\n",
                           400),
        "Content-Length with Transfer-Encoding": (
            f"PUT /uapi/phoneCalls/@me/{A}/ab HTTP/1.1\r\nHost: x\r\n".encode() + auth
            + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\nX-S: " + mark
            + b"\r\n\r\n0\r\n\r\n", 400),
        "not HTTP at all": (b"\x16\x03\x01\x02\x00\x01" + mark + b"\r\n\r\n", 400),
    }


async def test_unparseable_requests_get_the_json_envelope_and_no_echo(
    tmp_path: Path,
) -> None:
    async with served(tmp_path) as s:
        token = s.token()
        for name, (data, status) in _bad_requests(token).items():
            out = await s.raw(data)
            assert _status(out) == status, (name, out[:300])
            error = _json_body(out)["error"]
            assert set(error) == {"code", "message"}, name
            assert error["code"] in ("request_invalid", "request_header_too_large"), name
            assert SECRET_MARK.encode() not in out, name
            assert token.encode() not in out, name


# --------------------------------------------------------------------------- item 11


async def test_every_route_with_and_without_a_trailing_slash(tmp_path: Path) -> None:
    """The exact requests VoipNow's clients send, and every other route, with a trailing
    `/`: the same answer as without it, never a redirect or 404."""
    async with served(tmp_path) as s:
        hdrs = {"Authorization": f"Bearer {s.token()}"}
        put_hdrs = {**hdrs, "Content-Type": "application/json"}
        body = json.dumps({"action": "StartRecording", "phoneCallViewId": "01"})
        cases = [
            ("GET", f"/uapi/phoneCalls/@me/{A}", hdrs, None),
            ("GET", f"/uapi/phoneCalls/@me/{A}/0123abc", hdrs, None),
            ("PUT", f"/uapi/phoneCalls/@me/{A}/0123abc", put_hdrs, body),
            ("GET", f"/uapi/phoneCall/@me/{A}", hdrs, None),
            ("PUT", f"/uapi/phoneCall/@me/{A}/0123abc", put_hdrs, body),
            ("GET", "/uapi/openapi.json", {}, None),
            ("GET", "/healthz", {}, None),
            ("GET", "/readyz", {}, None),
            ("GET", "/metrics", hdrs, None),
            ("POST", "/oauth/token", {"Content-Type": "application/x-www-form-urlencoded"},
             f"grant_type=client_credentials&client_id={s.apps.client_id['john']}"
             f"&client_secret={s.apps.secret['john']}"),
        ]
        for method, path, headers, data in cases:
            answers = []
            for p in (path, path + "/"):
                async with s.http.request(method, s.base + p, headers=headers, data=data,
                                          allow_redirects=False) as r:
                    text = await r.text()
                    answers.append((r.status, r.content_type))
                    if r.status >= 400:
                        answers[-1] += (json.loads(text)["error"]["code"],)
            assert answers[0] == answers[1], (method, path, answers)
            assert answers[1][0] not in (301, 302, 307, 308, 404), (method, path, answers)
        # A slash is not a wildcard: two slashes, or a slash inside a name, are still 404.
        for p in (f"/uapi/phoneCalls/@me/{A}//", "/healthz//", "/health/z"):
            async with s.http.get(s.base + p, headers=hdrs, allow_redirects=False) as r:
                assert r.status == 404, p


# --------------------------------------------------------------------------- minor


async def test_expect_100_continue_only_after_authentication(tmp_path: Path) -> None:
    async with served(tmp_path) as s:
        body = b'{"action":"StartRecording","phoneCallViewId":"01"}'
        head = (f"PUT /uapi/phoneCalls/@me/{A}/0123abc HTTP/1.1\r\nHost: x\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Expect: 100-continue\r\n")
        for auth, first in ((f"Authorization: Bearer {SECRET_MARK}\r\n", 401), ("", 401),
                            (f"Authorization: Bearer {s.token()}\r\n", 100)):
            reader, writer = await asyncio.open_connection("127.0.0.1", s.service.port)
            writer.write((head + auth + "\r\n").encode())
            await writer.drain()
            async with asyncio.timeout(5):
                status_line = await reader.readuntil(b"\r\n")
            assert int(status_line.split(b" ")[1]) == first, (auth, status_line)
            if first == 100:
                writer.write(body)
                await writer.drain()
                async with asyncio.timeout(5):
                    assert await reader.readexactly(2) == b"\r\n"  # the end of the 100
                    final = await reader.readuntil(b"\r\n")
                # authenticated and valid: the PBX is not connected in this test
                assert int(final.split(b" ")[1]) == 503, final
            else:
                async with asyncio.timeout(5):
                    rest = status_line + await reader.read()  # and the server closes
                assert _json_body(rest)["error"]["code"] == "unauthorized"
            writer.transport.abort()


@pytest.mark.parametrize(("ctype", "status"), [
    ("application/json", 503),
    ("application/json; charset=utf-8", 503),
    ("Application/JSON;charset=UTF-8", 503),
    (None, 503),  # lenient: no Content-Type at all is judged by the body
    ("text/plain", 415),
    ("application/x-www-form-urlencoded", 415),
    ("multipart/form-data; boundary=x", 415),
    ("application/jsonx", 415),
])
async def test_put_content_type(tmp_path: Path, ctype: str | None, status: int) -> None:
    async with served(tmp_path) as s:
        hdrs = {"Authorization": f"Bearer {s.token()}"}
        if ctype is not None:
            hdrs["Content-Type"] = ctype
        body = b'{"action":"StartRecording","phoneCallViewId":"01"}'
        async with s.http.put(s.base + f"/uapi/phoneCalls/@me/{A}/0123abc/", data=body,
                              headers=hdrs,
                              skip_auto_headers=["Content-Type"]) as r:
            error = (await r.json())["error"]
            assert r.status == status, error
            if status == 415:
                assert error["code"] == "unsupported_media_type"
        # Authentication comes first: no token, 401 whatever the Content-Type.
        async with s.http.put(s.base + f"/uapi/phoneCalls/@me/{A}/0123abc", data=body,
                              headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 401


# --------------------------------------------------------------------------- item 1


async def test_redos_header_costs_what_a_bad_token_costs(tmp_path: Path) -> None:
    """`Bearer` + 8,000 spaces + `a b` in the token headers, over a real socket: answered
    401 like any bad token, in about the time of one (it took 0.1-0.85 s per request with
    the old regex, ~500 times a bad token)."""
    async with served(tmp_path) as s:
        url = s.base + f"/uapi/phoneCalls/@me/{A}"
        cases = {
            "bad_token": {"Authorization": "Bearer nope"},
            "authorization_8000_spaces": {"Authorization": "Bearer" + " " * 8000 + "a b"},
            "authentication_8000_spaces": {"Authentication": "Bearer" + " " * 8000 + "a b"},
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(30):
            for name, headers in cases.items():
                t0 = time.perf_counter()
                async with s.http.get(url, headers=headers) as r:
                    await r.read()
                    assert r.status == 401
                times[name].append(time.perf_counter() - t0)
        medians = {name: statistics.median(t) for name, t in times.items()}
        for name in ("authorization_8000_spaces", "authentication_8000_spaces"):
            assert medians[name] < 20 * medians["bad_token"], medians
    report("redos_header", **{f"{k}_median_ms": round(v * 1000, 3) for k, v in medians.items()})
