"""Adversarial headers through the app, on a real loopback socket (issue 9, item 1).

`Authorization: Bearer` + 8,000 spaces + `a b` took 0.1-0.85 s of the event loop per
request with the old regex (quadratic backtracking), against 0.2 ms for a bad token. The
time of a request whose header is 8 times longer must stay well under the 64 times a
quadratic parser takes (linear: about 1-2 times here, since the request itself dominates;
the old regex: about 50-60 times). No absolute wall-clock threshold.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.unit.api_support import Api

MAX_RATIO = 24.0
LIST = "/uapi/phoneCalls/@me/0003*210"

# ------------------------------------------------------------------ through the app

# (method, path, header name or None for the query, value of size n, with John's
# token). Sizes stay under aiohttp's 8,190-byte header line limit: n = 1,000 and 8,000.
THROUGH_THE_APP = {
    "Authorization bearer": ("GET", LIST, "Authorization",
                             lambda n: "Bearer" + " " * n + "a b", False),
    "Authentication bearer": ("GET", LIST, "Authentication",
                              lambda n: "Bearer" + " " * n + "a b", False),
    "oauth basic": ("POST", "/oauth/token", "Authorization",
                    lambda n: "Basic" + " " * n + "a b", False),
    "query token": ("GET", LIST + "?accessRequestToken=", None,
                    lambda n: "a" * n + "!", False),
    "long path segment": ("GET", "/uapi/phoneCalls/@me/", None,
                          lambda n: "0" * n + "*", True),
    "content type": ("PUT", LIST + "/ab", "Content-Type",
                     lambda n: "application/json" + " ;" * (n // 2), True),
}


async def _request_time(api: Api, method: str, path: str, header: str | None,
                        value: str, token: bool) -> float:
    headers = api.apps.auth("john") if token else {}
    if header is None:
        path += value
    else:
        headers[header] = value
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        resp = await api.client.request(method, path, headers=headers, data=b"{}")
        await resp.read()
        times.append(time.perf_counter() - t0)
        assert resp.status < 500
    return statistics.median(times)


@pytest.mark.parametrize("case", THROUGH_THE_APP.values(), ids=THROUGH_THE_APP.keys())
async def test_requests_stay_linear_through_the_app(
    aiohttp_client: Callable[..., Awaitable[Any]], tmp_path: Any, case: tuple
) -> None:
    api = await Api.start(aiohttp_client, tmp_path)
    method, path, header, make, token = case
    await _request_time(api, method, path, header, make(10), token)  # warm-up
    t_small = await _request_time(api, method, path, header, make(1000), token)
    t_big = await _request_time(api, method, path, header, make(8000), token)
    assert t_big / t_small < MAX_RATIO, (t_small, t_big)
