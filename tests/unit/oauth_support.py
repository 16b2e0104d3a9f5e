"""The API unit tests' app (tests/unit/api_support.py) with chosen ``[auth]`` settings,
for the OAuth tests (revocation, throttling, purge)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pbx_bridge.config import AuthSettings
from pbx_bridge.server import Services
from tests.unit.api_support import AmiSpy, Api, Apps, FakePbx, make_directory, make_settings

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def start_api(
    aiohttp_client: Any,
    tmp_path: Path,
    *,
    clock: Callable[[], float] | None = None,
    **auth: Any,
) -> Api:
    from aiohttp.test_utils import TestServer

    from pbx_bridge.api.app import AccessLogger, create_app

    settings = make_settings(tmp_path)
    settings = settings.model_copy(update={"auth": AuthSettings(**auth)})
    directory = make_directory(settings, clock)
    bridge = Services(settings, directory)
    spy = AmiSpy(bridge.ami)
    bridge.ami.send_action = spy  # type: ignore[method-assign]
    server = TestServer(create_app(settings, directory, bridge))
    await server.start_server(access_log_class=AccessLogger)
    client = await aiohttp_client(server)
    return Api(settings, directory, bridge, client, Apps.create(directory), FakePbx(bridge), spy)


async def authenticated(api: Api, token: str) -> bool:
    """Whether the service takes this bearer token (the PBX is down: 503 when it does)."""
    api.bridge.ready = False
    resp = await api.client.get(
        "/uapi/phoneCalls/@me/@self", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status in (401, 503), resp.status
    return resp.status == 503
