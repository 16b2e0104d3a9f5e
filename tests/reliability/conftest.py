from collections.abc import AsyncIterator

import pytest

from tests.reliability.support import connect_observer
from tests.support.fixtures import ami_log, pbx, phones, sandbox  # noqa: F401
from tests.support.pbx import EventLog


@pytest.fixture
async def observer(pbx) -> AsyncIterator[EventLog]:  # noqa: F811
    """Every AMI event of the real Asterisk, seen by the test's own client (`.client`)."""
    log = await connect_observer(pbx)
    try:
        yield log
    finally:
        await log.client.close()  # type: ignore[attr-defined]
