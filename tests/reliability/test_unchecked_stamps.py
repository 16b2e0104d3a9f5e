"""A resync that cannot check a PBX_REC stamp (a busy PBX answers its Getvar too late)
does not show the view recording (never claimed unconfirmed), and a StartRecording on
that view then asks Asterisk first instead of adding a second MixMonitor to it.

Found with bench.resync on a loaded machine: 500 recorded calls, ~80 of them not
checked in time after a reconnect; a start (or the "always" repair) on one of those
would have started a second recording of the view. Fault injection with the fake AMI
server (tests/fakeami.py): only Getvar's timing is faked; what a real Asterisk answers
is proven by tests/e2e."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pbx_bridge.calls.tracker import call_id
from pbx_bridge.recording.variables import REC_HEADER
from tests.fakeami import FakeAmi, FakeConnection
from tests.reliability.support import Api, serve
from tests.support.pbx import AMI_USER

EXT = "0003*210"
STAMP = "1790000000.000|3/0003*210/2026-11-30/x-01-101010.wav"


def _channel(i: int) -> dict[str, str]:
    uid = f"1790000000.{i}"
    return {"Channel": f"PJSIP/{EXT}-{i:08x}", "ChannelState": "6", "ChannelStateDesc": "Up",
            "CallerIDNum": EXT, "CallerIDName": "John Doe", "Context": "public-sim",
            "Exten": "7778888", "Uniqueid": uid, "Linkedid": uid, "Application": "Dial",
            REC_HEADER: STAMP}


RUNS, ENDED = _channel(1), _channel(2)  # a MixMonitor runs on the first only


async def _channels(conn: FakeConnection, action: dict[str, str]) -> None:
    aid = action["ActionID"]
    await conn.send({"Response": "Success", "ActionID": aid, "EventList": "start"})
    for ch in (RUNS, ENDED):
        await conn.send({"Event": "CoreShowChannel", "ActionID": aid, **ch})
    await conn.send({"Event": "CoreShowChannelsComplete", "ActionID": aid,
                     "EventList": "Complete", "ListItems": "2"})


def _no_answer(conn: FakeConnection, action: dict[str, str]) -> None:
    return None  # the busy PBX: the Getvar times out


async def _asterisk_answers(conn: FakeConnection, action: dict[str, str]) -> None:
    running = action.get("Channel") == RUNS["Channel"]
    await conn.send({"Response": "Success", "ActionID": action["ActionID"],
                     "Variable": action.get("Variable", ""),
                     "Value": "/var/spool/asterisk/monitor/x.wav" if running else ""})


async def _mixmonitor(conn: FakeConnection, action: dict[str, str]) -> None:
    await conn.send({"Response": "Success", "ActionID": action["ActionID"],
                     "MixMonitorID": "0x7f0000000001"})


@pytest.fixture
async def busy_resync(tmp_path) -> AsyncIterator[tuple[Api, FakeAmi]]:
    fake = FakeAmi(username=AMI_USER, secret="fake-ami-secret")
    fake.handlers["coreshowchannels"] = _channels
    fake.handlers["getvar"] = _no_answer
    fake.handlers["mixmonitor"] = _mixmonitor
    await fake.start()
    try:
        # No periodic resync during the test: only the start may ask Asterisk again.
        async with serve(None, tmp_path, ami_port=fake.port, action_timeout=0.3,
                         resync_interval=3600.0) as api:
            yield api, fake
    finally:
        await fake.close()


def _mixmonitors_on(fake: FakeAmi, ch: dict[str, str]) -> int:
    return sum(a.get("Channel") == ch["Channel"] for a in fake.actions_named("MixMonitor"))


async def test_a_start_on_an_unchecked_stamp_asks_asterisk_first(busy_resync) -> None:
    api, fake = busy_resync
    for ch in (RUNS, ENDED):  # not checked in time: not shown
        view = (await api.get(EXT, call_id(ch["Linkedid"]))).body["phoneCallView"][0]
        assert "recording" not in view
    fake.handlers["getvar"] = _asterisk_answers  # the PBX has caught up

    r = await api.start(EXT, call_id(RUNS["Linkedid"]))
    assert r.status == 200, r.text
    assert "recording" in r.body["phoneCallView"][0]  # Asterisk's answer: it runs
    assert _mixmonitors_on(fake, RUNS) == 0, "a second MixMonitor on a recorded view"

    r = await api.start(EXT, call_id(ENDED["Linkedid"]))
    assert r.status == 200, r.text
    assert _mixmonitors_on(fake, ENDED) == 1  # nothing ran there: started as usual
