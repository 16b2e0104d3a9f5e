"""The replicas tier (issue 16, item 2): two `pbx-bridge serve` processes on one real
PostgreSQL server, against the real sandbox Asterisk (tests/support/replicas.py)."""

from collections.abc import AsyncIterator

import pytest

from tests.reliability.support import Calls, connect_observer
from tests.support.fixtures import ami_log, pbx, phones, sandbox  # noqa: F401
from tests.support.pbx import EventLog
from tests.support.replicas import Replicas, start_replicas


@pytest.fixture
async def observer(pbx) -> AsyncIterator[EventLog]:  # noqa: F811
    """Every AMI event of the real Asterisk, seen by the test's own client (`.client`)."""
    log = await connect_observer(pbx)
    try:
        yield log
    finally:
        await log.client.close()  # type: ignore[attr-defined]


@pytest.fixture
async def replicas(pbx, postgres_server, tmp_path) -> AsyncIterator[Replicas]:  # noqa: F811
    async with start_replicas(pbx, postgres_server, tmp_path) as group:
        yield group


@pytest.fixture
async def calls(pbx, observer) -> AsyncIterator[Calls]:  # noqa: F811
    """Live answered calls on the real PBX (auto-answering baresip, the public number's
    audio), through the test's own AMI client."""
    live = Calls(pbx, observer.client, observer)
    await live.add_phones(1)
    try:
        yield live
    finally:
        await live.close()
