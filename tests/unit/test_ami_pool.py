"""AmiPool (pbx/pool.py): the event session plus action sessions, against the fake AMI
server (fault injection: sessions refused, dropped mid-request, answers held back)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from pbx_bridge.config import AmiSettings
from pbx_bridge.core.link import PbxLink, ami_client
from pbx_bridge.pbx.ami import AmiNotConnected, is_success
from pbx_bridge.pbx.pool import AmiPool, channel_of
from tests.fakeami import FakeAmi, FakeConnection

SECRET = "s3cret-pool"
FAST: dict[str, float] = {
    "ping_interval": 5.0,
    "ping_timeout": 1.0,
    "action_timeout": 2.0,
    "connect_timeout": 1.0,
    "backoff_base": 0.01,
    "backoff_cap": 0.05,
    "auth_retry": 0.3,
}


@pytest.fixture
async def ami() -> AsyncIterator[FakeAmi]:
    async with FakeAmi(secret=SECRET) as server:
        yield server


@pytest.fixture
async def make_pool() -> AsyncIterator[Callable[..., AmiPool]]:
    made: list[AmiPool] = []

    def make(server: FakeAmi, sessions: int = 3, **kw: Any) -> AmiPool:
        pool = AmiPool("127.0.0.1", server.port, "bridge", SECRET,
                       action_sessions=sessions, **{**FAST, **kw})
        made.append(pool)
        return pool

    yield make
    for pool in made:
        await pool.close()


async def until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def all_up(pool: AmiPool) -> AmiPool:
    await pool.start()
    await pool.wait_connected(2.0)
    await until(lambda: pool.action_sessions_up == len(pool.sessions))
    return pool


def logged_in(ami: FakeAmi, events: str) -> list[FakeConnection]:
    return [c for c in ami.connections if c.logged_in and c.events == events]


def channels_on(conn: FakeConnection) -> list[tuple[str, str]]:
    """(channel, value) of every Setvar the connection got, in order."""
    return [(a["Channel"], a["Value"]) for a in conn.actions if a.get("Action") == "Setvar"]


def empty_resyncs(ami: FakeAmi) -> list[FakeConnection]:
    """Answer CoreShowChannels with an empty list; return the connections it came on."""
    seen: list[FakeConnection] = []

    def answer(conn: FakeConnection, action: dict[str, str]) -> None:
        seen.append(conn)
        conn.send_later(0.02, {"Response": "Success", "ActionID": action["ActionID"],
                               "EventList": "start"})
        conn.send_later(0.03, {"Event": "CoreShowChannelsComplete", "EventList": "Complete",
                               "ActionID": action["ActionID"]})

    ami.handlers["coreshowchannels"] = answer
    return seen


def hold_answers(ami: FakeAmi, name: str) -> list[tuple[FakeConnection, str]]:
    """Leave ``name`` actions unanswered; return what was held, to answer later."""
    held: list[tuple[FakeConnection, str]] = []
    ami.handlers[name.lower()] = lambda conn, action: held.append((conn, action["ActionID"]))
    return held


# -- routing ------------------------------------------------------------------------


def test_channel_of_reads_channel_then_channel1() -> None:
    assert channel_of({"Channel": "PJSIP/1-1", "Channel1": "PJSIP/2-1"}) == "PJSIP/1-1"
    assert channel_of({"Channel1": "PJSIP/2-1", "Channel2": "x"}) == "PJSIP/2-1"
    assert channel_of({"channel": "Local/1@x-1;2"}) == "Local/1@x-1;2"
    assert channel_of({"Family": "pbx_bridge"}) is None and channel_of(None) is None


def test_the_service_logs_in_action_sessions_as_configured() -> None:
    pool = ami_client(AmiSettings(secret="x", action_sessions=3))
    assert isinstance(pool, AmiPool) and len(pool.sessions) == 3
    assert pool.events == "on" and {s.events for s in pool.sessions} == {"off"}
    assert {(s.username, s.action_timeout, s.ping_interval, s.auth_retry)
            for s in pool.sessions} == {(pool.username, pool.action_timeout,
                                         pool.ping_interval, pool.auth_retry)}


async def test_actions_spread_by_channel_each_channel_in_order(
    ami: FakeAmi, make_pool: Callable[..., AmiPool]
) -> None:
    pool = await all_up(make_pool(ami, sessions=3))
    (event_conn,) = logged_in(ami, "on")
    action_conns = logged_in(ami, "off")
    assert len(action_conns) == 3
    channels = [f"PJSIP/{n}-0000{n:04x}" for n in range(40)]
    # Pipelined, as StartRecording sends its Setvar and MixMonitor: 5 per channel.
    answers = await asyncio.gather(*(
        pool.send_action("Setvar", {"Channel": ch, "Variable": "V", "Value": str(i)})
        for i in range(5) for ch in channels))
    assert all(is_success(a) for a in answers)
    assert channels_on(event_conn) == []
    used = [conn for conn in action_conns if channels_on(conn)]
    assert len(used) == 3, "40 channels hash onto every session"
    for ch in channels:
        (conn,) = [c for c in action_conns if any(n == ch for n, _ in channels_on(c))]
        assert [v for n, v in channels_on(conn) if n == ch] == ["0", "1", "2", "3", "4"]
    # The resync's snapshot stays on the event session, with the events it orders.
    resyncs = empty_resyncs(ami)
    resp, _ = await pool.send_list_action("CoreShowChannels")
    assert is_success(resp) and resyncs == [event_conn]


async def test_actions_without_channel_go_to_the_least_busy_session(
    ami: FakeAmi, make_pool: Callable[..., AmiPool]
) -> None:
    pool = await all_up(make_pool(ami, sessions=2))
    held = hold_answers(ami, "Slow")
    slow = asyncio.create_task(pool.send_action("Slow"))
    await until(lambda: len(held) == 1)
    await pool.send_action("DBPut", {"Family": "f", "Key": "k", "Val": "v"})
    (busy,) = [conn for conn, _ in held]
    (db,) = [c for c in ami.connections if any(a.get("Action") == "DBPut" for a in c.actions)]
    assert db is not busy and db.events == "off"
    conn, action_id = held[0]
    await conn.send({"Response": "Success", "ActionID": action_id})
    assert is_success(await slow)


async def test_zero_action_sessions_is_one_session_as_before(
    ami: FakeAmi, make_pool: Callable[..., AmiPool]
) -> None:
    pool = await all_up(make_pool(ami, sessions=0))
    await pool.send_action("Setvar", {"Channel": "PJSIP/1-1", "Variable": "V", "Value": "1"})
    assert [c.events for c in ami.connections] == ["on"]
    assert pool.action_sessions_up == 0


# -- faults ---------------------------------------------------------------------------


async def test_a_refused_action_session_leaves_its_channels_on_the_event_session(
    ami: FakeAmi, make_pool: Callable[..., AmiPool], caplog: pytest.LogCaptureFixture
) -> None:
    ami.refuse = lambda login: login.get("Events") == "off"
    pool = make_pool(ami, sessions=2)
    link = PbxLink(pool, dict, resync_interval=300.0)
    await pool.start()
    await pool.wait_connected(2.0)
    await until(lambda: sum(not ok for _, ok in ami.logins) >= 2)
    assert pool.connected and pool.action_sessions_up == 0
    resp = await pool.send_action("Setvar", {"Channel": "PJSIP/7-1", "Variable": "V",
                                             "Value": "1"})
    assert is_success(resp)
    (event_conn,) = logged_in(ami, "on")
    assert channels_on(event_conn) == [("PJSIP/7-1", "1")]
    assert link.degraded() == ("2 of 2 AMI action sessions down: their actions go through "
                               "the event session")
    assert SECRET not in caplog.text
    # They log in once Asterisk lets them: their channels move to them, readiness is whole.
    ami.refuse = None
    await until(lambda: pool.action_sessions_up == 2, timeout=3.0)
    assert link.degraded() is None


async def test_an_action_session_dropping_mid_request(
    ami: FakeAmi, make_pool: Callable[..., AmiPool]
) -> None:
    """The answer is lost with its session: AmiNotConnected (503), the action is never sent
    again elsewhere, and PbxLink stops claiming anything until a resync is done."""
    pool = make_pool(ami, sessions=2)
    link = PbxLink(pool, dict, resync_interval=300.0)
    resyncs = empty_resyncs(ami)
    await all_up(pool)
    await until(link.is_ready)
    assert len(resyncs) == 1
    held = hold_answers(ami, "MixMonitor")
    start = asyncio.create_task(pool.send_action("MixMonitor", {"Channel": "PJSIP/5-1"}))
    await until(lambda: len(held) == 1)
    conn, _ = held[0]
    assert conn.events == "off"
    conn.abort()
    with pytest.raises(AmiNotConnected):
        await start
    assert not link.is_ready(), "the MixMonitor may have run: nothing is claimed"
    await until(link.is_ready)
    assert len(resyncs) == 2 and resyncs[1].events == "on"
    assert len(ami.actions_named("MixMonitor")) == 1, "never sent again"
    assert pool.connected, "the event session stayed up"
    await until(lambda: pool.action_sessions_up == 2)
    await pool.close()


async def test_a_channel_follows_its_unanswered_actions(
    ami: FakeAmi, make_pool: Callable[..., AmiPool]
) -> None:
    """A channel's actions sent on the event session while its action session was down
    are not overtaken by its next ones once that session is back."""
    ami.refuse = lambda login: login.get("Events") == "off"
    pool = make_pool(ami, sessions=1)
    await pool.start()
    await pool.wait_connected(2.0)
    held = hold_answers(ami, "Slow")
    first = asyncio.create_task(pool.send_action("Slow", {"Channel": "PJSIP/9-1"}))
    await until(lambda: len(held) == 1)
    ami.refuse = None
    await until(lambda: pool.action_sessions_up == 1)
    second = asyncio.create_task(
        pool.send_action("Setvar", {"Channel": "PJSIP/9-1", "Variable": "V", "Value": "2"}))
    other = await pool.send_action("Setvar", {"Channel": "PJSIP/8-1", "Variable": "V",
                                              "Value": "x"})
    assert is_success(other)
    (event_conn,) = logged_in(ami, "on")
    (action_conn,) = logged_in(ami, "off")
    await until(lambda: ("PJSIP/9-1", "2") in channels_on(event_conn))
    assert channels_on(action_conn) == [("PJSIP/8-1", "x")]
    conn, action_id = held[0]
    await conn.send({"Response": "Success", "ActionID": action_id})
    await first
    await second
    # Nothing unanswered any more: the channel goes to its own session again.
    await pool.send_action("Setvar", {"Channel": "PJSIP/9-1", "Variable": "V", "Value": "3"})
    assert ("PJSIP/9-1", "3") in channels_on(action_conn)


async def test_everything_down_is_not_connected(
    ami: FakeAmi, make_pool: Callable[..., AmiPool], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="pbx_bridge.ami")
    pool = make_pool(ami, sessions=2)
    with pytest.raises(AmiNotConnected):
        await pool.send_action("Setvar", {"Channel": "PJSIP/1-1", "Variable": "V",
                                          "Value": "1"})
    await all_up(pool)
    await pool.close()
    with pytest.raises(AmiNotConnected):
        await pool.send_action("Ping")
    assert all(not s.connected for s in pool.sessions)
