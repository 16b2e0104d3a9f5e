"""A (re)connect's resync that fails is tried again on the same connection (fault
injection through tests/fakeami.py: Asterisk busy enough that the first CoreShowChannels
gets no answer within the action timeout). Before, the bridge stayed unready for the
whole connection: the periodic resync runs only once ready, so nothing tried again
until the link dropped."""

from __future__ import annotations

import asyncio

from pbx_bridge.server import Services
from tests.fakeami import FakeAmi, FakeConnection
from tests.unit.api_support import make_directory, make_settings


class SilentFirst:
    """CoreShowChannels: no answer the first ``n`` times (a busy PBX), then an empty list."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen = 0

    async def __call__(self, conn: FakeConnection, action: dict[str, str]) -> None:
        self.seen += 1
        if self.seen <= self.n:
            return
        aid = action["ActionID"]
        await conn.send({"Response": "Success", "ActionID": aid, "EventList": "start"})
        await conn.send({"Event": "CoreShowChannelsComplete", "ActionID": aid,
                         "EventList": "Complete", "ListItems": "0"})


async def test_a_timed_out_connect_resync_is_tried_again_until_ready(tmp_path) -> None:
    fake = FakeAmi(username="pbx-bridge", secret="test-secret")
    silent = SilentFirst(2)
    fake.handlers["coreshowchannels"] = silent
    await fake.start()
    base = make_settings(tmp_path)
    settings = base.model_copy(update={
        "ami": base.ami.model_copy(update={"port": fake.port, "action_timeout": 0.2}),
    })
    bridge = Services(settings, make_directory(settings))
    await bridge.start()
    try:
        async with asyncio.timeout(10):
            while not bridge.ready:
                await asyncio.sleep(0.02)
        assert silent.seen == 3  # two unanswered, then the one that made it ready
        assert len(fake.connections) == 1, "the same connection: no reconnect was needed"
        assert bridge.link.resyncs == 1
    finally:
        await bridge.close()
        await fake.close()
