"""AmiClient against a fake AMI server on loopback.

One regression test per panoramisk defect listed in the design notes, plus the
client's own contract (ordering of connect handlers and events, list actions,
close()).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from pbx_bridge.pbx import ami as ami_module
from pbx_bridge.pbx.ami import (
    AmiClient,
    AmiError,
    AmiNotConnected,
    AmiTimeout,
    is_success,
)
from pbx_bridge.pbx.framing import Message
from tests.fakeami import FakeAmi, FakeConnection

SECRET = "s3cret-do-not-log"
FAST: dict[str, float] = {
    "ping_interval": 5.0,
    "ping_timeout": 1.0,
    "action_timeout": 1.0,
    "connect_timeout": 1.0,
    "backoff_base": 0.01,
    "backoff_cap": 0.05,
    "auth_retry": 0.5,
}

MakeClient = Callable[..., AmiClient]


@pytest.fixture
async def ami() -> AsyncIterator[FakeAmi]:
    async with FakeAmi(secret=SECRET) as server:
        yield server


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    made: list[AmiClient] = []

    def make(server: FakeAmi, **kwargs: Any) -> AmiClient:
        username = kwargs.pop("username", "bridge")
        secret = kwargs.pop("secret", SECRET)
        client = AmiClient("127.0.0.1", server.port, username, secret, **{**FAST, **kwargs})
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


async def started(client: AmiClient, timeout: float = 2.0) -> AmiClient:
    await client.start()
    await client.wait_connected(timeout)
    return client


async def until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def collect(client: AmiClient) -> list[Message]:
    seen: list[Message] = []
    client.add_event_handler(seen.append)
    return seen


def names(events: list[Message]) -> list[str]:
    return [e.get("Event", "?") for e in events]


# -- basics -------------------------------------------------------------------------


async def test_login_and_first_event(ami: FakeAmi, make_client: MakeClient) -> None:
    client = make_client(ami, events="call,system")
    seen = collect(client)
    assert not client.connected
    await started(client)
    assert client.connected
    (login,) = ami.actions_named("Login")
    assert login["Username"] == "bridge"
    assert login["Secret"] == SECRET
    assert login["Events"] == "call,system"
    await until(lambda: names(seen) == ["FullyBooted"])
    assert client.events_received == 1
    assert client.reconnects == 0


async def test_send_action_and_is_success(ami: FakeAmi, make_client: MakeClient) -> None:
    client = await started(make_client(ami))
    pong = await client.send_action("Ping")
    assert is_success(pong)
    assert pong["Ping"] == "Pong"

    async def refuse(conn: FakeConnection, action: dict[str, str]) -> None:
        await conn.send(
            {"Response": "Error", "ActionID": action["ActionID"], "Message": "No such channel"}
        )

    ami.handlers["hangup"] = refuse
    resp = await client.send_action("Hangup", {"Channel": "PJSIP/nobody"})
    assert not is_success(resp)
    assert resp["Message"] == "No such channel"


async def test_action_ids_are_unique(ami: FakeAmi, make_client: MakeClient) -> None:
    client = await started(make_client(ami))
    await asyncio.gather(*(client.send_action("Ping") for _ in range(50)))
    ids = [a["ActionID"] for a in ami.actions]
    assert len(ids) == len(set(ids)) == 51  # Login + 50 pings


async def test_not_connected_raises(ami: FakeAmi, make_client: MakeClient) -> None:
    client = make_client(ami)
    with pytest.raises(AmiNotConnected):
        await client.send_action("Ping")
    with pytest.raises(AmiNotConnected):
        await client.send_list_action("CoreShowChannels")


async def test_control_characters_never_reach_the_wire(
    ami: FakeAmi, make_client: MakeClient
) -> None:
    client = await started(make_client(ami))
    with pytest.raises(ValueError):
        await client.send_action("Setvar", {"Value": "x\r\nAction: Hangup\r\nChannel: all"})
    assert is_success(await client.send_action("Ping"))  # the link is fine
    assert ami.actions_named("Hangup") == []
    assert ami.actions_named("Setvar") == []
    assert client._pending == {}


async def test_repr_hides_the_secret(ami: FakeAmi, make_client: MakeClient) -> None:
    client = await started(make_client(ami))
    assert SECRET not in repr(client)
    assert "bridge" in repr(client)


# -- panoramisk defect 1: Originate without Async --------------------------------------


async def test_originate_without_async_answered_late(ami: FakeAmi, make_client: MakeClient) -> None:
    client = await started(make_client(ami, action_timeout=0.2, ping_interval=0.05))
    seen = collect(client)

    def originate(conn: FakeConnection, action: dict[str, str]) -> None:
        # Asterisk answers a synchronous Originate only once the call is
        # answered: events and pings come and go in between.
        conn.send_later(
            0.5,
            {
                "Response": "Success",
                "ActionID": action["ActionID"],
                "Message": "Originate successfully queued",
            },
        )

    ami.handlers["originate"] = originate
    task = asyncio.create_task(
        client.send_action(
            "Originate",
            {"Channel": "PJSIP/1001", "Exten": "1002", "Context": "internal", "Timeout": 1000},
        )
    )
    await ami.send_event({"Event": "Newchannel", "Channel": "PJSIP/1001-00000001"})
    resp = await task  # longer than action_timeout: the Originate Timeout counts
    assert is_success(resp)
    assert "Newchannel" in names(seen)
    assert len(ami.actions_named("Ping")) >= 3  # pings answered meanwhile
    assert client.connected
    assert client.reconnects == 0
    assert len(ami.connections) == 1


async def test_late_answer_after_timeout_is_harmless(ami: FakeAmi, make_client: MakeClient) -> None:
    client = await started(make_client(ami))

    def originate(conn: FakeConnection, action: dict[str, str]) -> None:
        conn.send_later(0.2, {"Response": "Success", "ActionID": action["ActionID"]})

    ami.handlers["originate"] = originate
    with pytest.raises(AmiTimeout):
        await client.send_action("Originate", {"Channel": "PJSIP/1001"}, timeout=0.05)
    await asyncio.sleep(0.3)  # the late Response arrives with nobody waiting
    assert is_success(await client.send_action("Ping"))
    assert client.reconnects == 0
    assert client._pending == {}


# -- panoramisk defect 2: a handler exception drops the link ---------------------------


async def test_handler_exception_does_not_drop_the_link(
    ami: FakeAmi, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="pbx_bridge.ami")
    client = make_client(ami)
    seen: list[Message] = []

    def bad_sync(msg: Message) -> None:
        if msg.get("Event") == "Boom":
            raise RuntimeError("sync handler bug")

    async def bad_async(msg: Message) -> None:
        if msg.get("Event") == "Boom":
            raise ValueError("async handler bug")

    client.add_event_handler(bad_sync)
    client.add_event_handler(bad_async)
    client.add_event_handler(seen.append)  # runs after the failing ones
    await started(client)
    await ami.send_event({"Event": "Boom"})
    await ami.send_event({"Event": "After"})
    await until(lambda: "After" in names(seen))
    assert names(seen) == ["FullyBooted", "Boom", "After"]
    assert client.handler_errors == 2
    assert client.connected and client.reconnects == 0
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 2
    assert all("Boom" in r.getMessage() for r in failures)
    assert is_success(await client.send_action("Ping"))


async def test_connect_handler_exception_is_swallowed(
    ami: FakeAmi, make_client: MakeClient
) -> None:
    client = make_client(ami)
    seen = collect(client)

    async def broken() -> None:
        raise RuntimeError("resync failed")

    client.add_connect_handler(broken)
    await started(client)
    await until(lambda: names(seen) == ["FullyBooted"])
    assert client.handler_errors == 1
    assert client.connected


# -- panoramisk defect 3: UTF-8 split across TCP reads ---------------------------------


async def test_utf8_split_across_tcp_writes(ami: FakeAmi, make_client: MakeClient) -> None:
    client = await started(make_client(ami))
    seen = collect(client)
    data = "Event: Newchannel\r\nCallerIDName: Zoë 日本\r\n\r\n".encode()
    cut = data.index("ë".encode()) + 1  # inside the two bytes of "ë"
    cut2 = data.index("日".encode()) + 2  # inside the three bytes of "日"
    for piece in (data[:cut], data[cut:cut2], data[cut2:]):
        await ami.current.send_raw(piece)
        await asyncio.sleep(0.02)  # separate TCP reads
    await until(lambda: "Newchannel" in names(seen))
    assert seen[-1]["CallerIDName"] == "Zoë 日本"


# -- panoramisk defect 4: timed-out actions leak --------------------------------------


async def test_ten_thousand_timeouts_leave_nothing_behind(make_client: MakeClient) -> None:
    async with FakeAmi(secret=SECRET, record_actions=False) as server:
        server.handlers["never"] = lambda conn, action: None  # never answered
        client = await started(make_client(server))

        async def burst(n: int) -> None:
            results = await asyncio.gather(
                *(client.send_action("Never", timeout=0.05) for _ in range(n)),
                return_exceptions=True,
            )
            assert all(isinstance(r, AmiTimeout) for r in results)
            del results
            # The callback that woke us up still holds gather()'s future (and
            # through it every exception) until this task yields once more.
            await asyncio.sleep(0)

        await burst(500)  # warm up allocator and caches
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            await burst(10_000)
            gc.collect()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        assert client._pending == {}
        ours = [tracemalloc.Filter(True, ami_module.__file__)]
        growth = sum(
            s.size_diff
            for s in after.filter_traces(ours).compare_to(before.filter_traces(ours), "filename")
        )
        total = sum(s.size_diff for s in after.compare_to(before, "filename"))
        # A leaked entry per action would be >= 10_000 * ~300 B = 3 MB.  (asyncio's
        # own task registry keeps its grown table: ~0.5 MB of "total".)
        assert growth < 50_000, growth
        assert total < 2_000_000, total
        assert client.connected and client.reconnects == 0


# -- panoramisk defect 5: no ping timeout (half-open link) ---------------------------


async def test_unanswered_ping_drops_the_link_and_reconnects(
    ami: FakeAmi, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pbx_bridge.ami")
    client = make_client(ami, ping_interval=0.05, ping_timeout=0.15)
    lost: list[str] = []
    client.add_disconnect_handler(lambda: lost.append("lost"))
    await started(client)
    first = ami.current
    first.answering = False  # socket stays open, nothing is answered any more
    await ami.wait_logged_in(2)
    await client.wait_connected(1.0)
    assert ami.current is not first
    assert client.reconnects >= 1
    await until(lambda: lost == ["lost"])
    assert any("did not answer Ping" in r.getMessage() for r in caplog.records)
    assert is_success(await client.send_action("Ping"))


async def test_a_busy_pbx_that_still_sends_keeps_its_link(
    ami: FakeAmi, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A backlog: the Ping is not answered in time, but other actions still are (late):
    both directions work, so the link stays. Events alone prove nothing (they flow
    even when our writes are lost): with only events, and then silence, it is dropped."""
    caplog.set_level(logging.INFO, logger="pbx_bridge.ami")
    client = make_client(ami, ping_interval=0.05, ping_timeout=0.15, action_timeout=5.0)
    ami.handlers["ping"] = lambda conn, action: None  # Pings wait behind the backlog
    ami.handlers["setvar"] = lambda conn, action: conn.send_later(
        0.1, {"Response": "Success", "ActionID": action["ActionID"]})
    await started(client)
    first = ami.current
    deadline = time.monotonic() + 0.8
    while time.monotonic() < deadline:  # a steady stream of slow answers
        assert is_success(await client.send_action("Setvar", {"Variable": "A", "Value": "1"}))
    assert ami.current is first and client.connected and client.reconnects == 0
    assert any("still answers actions; keeping the link" in r.getMessage()
               for r in caplog.records)

    async def chatter() -> None:
        while True:
            await first.send({"Event": "Newexten", "Channel": "PJSIP/x-1", "Uniqueid": "1.1"})
            await asyncio.sleep(0.02)

    talking = asyncio.create_task(chatter())  # events only: not proof enough
    try:
        await ami.wait_logged_in(2)
    finally:
        talking.cancel()
    assert ami.current is not first and client.reconnects >= 1


# -- panoramisk defect 6: wrong credentials retried every 2 s forever -----------------


async def test_wrong_credentials_log_once_and_retry_slowly(
    ami: FakeAmi, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pbx_bridge.ami")
    client = make_client(ami, secret="wrong-secret", auth_retry=0.5)
    await client.start()
    await ami.wait_until(lambda: len(ami.logins) >= 3, timeout=2.5)
    times = [t for t, _ in ami.logins]
    assert not any(ok for _, ok in ami.logins)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= 0.49 for gap in gaps), gaps
    assert not client.connected
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        f"AMI login rejected for user 'bridge' at 127.0.0.1:{ami.port}: Authentication failed"
    ]
    assert all("wrong-secret" not in r.getMessage() for r in caplog.records)
    with pytest.raises(AmiTimeout):
        await client.wait_connected(0.01)


# -- panoramisk defect 7: global state shared between instances -----------------------


async def test_two_clients_and_servers_do_not_interfere(make_client: MakeClient) -> None:
    async with FakeAmi(secret=SECRET) as one, FakeAmi(secret="other") as two:
        a = await started(make_client(one))
        b = await started(make_client(two, secret="other", username="bridge"))
        seen_a, seen_b = collect(a), collect(b)
        await one.send_event({"Event": "OnlyOne"})
        await two.send_event({"Event": "OnlyTwo"})
        await until(lambda: "OnlyOne" in names(seen_a) and "OnlyTwo" in names(seen_b))
        assert "OnlyTwo" not in names(seen_a)
        assert "OnlyOne" not in names(seen_b)
        await asyncio.gather(a.send_action("Ping"), b.send_action("Ping"))
        ids_one = {x["ActionID"] for x in one.actions}
        ids_two = {x["ActionID"] for x in two.actions}
        assert not ids_one & ids_two
        await a.close()
        assert not a.connected
        assert b.connected
        assert is_success(await b.send_action("Ping"))


# -- robustness ----------------------------------------------------------------------


async def test_garbage_from_the_server_does_not_crash(
    ami: FakeAmi, make_client: MakeClient
) -> None:
    client = await started(make_client(ami))
    seen = collect(client)
    await ami.current.send_raw(
        b"\x00\xff\xfe\x80garbage without colon\r\n:\r\n\xc3\r\n\r\n"
        + b"\x89PNG\r\n\x1a\n\x00\x00\r\n\r\n"
        + b"Response: Success\r\nActionID: not-ours\r\n\r\n"
        + b"NoEventNoResponse: x\r\n\r\n"
    )
    await ami.send_event({"Event": "StillAlive"})
    await until(lambda: "StillAlive" in names(seen))
    assert client.connected and client.reconnects == 0


async def test_slow_login_times_out_and_retries(make_client: MakeClient) -> None:
    async with FakeAmi(secret=SECRET, login_delays=[0.6]) as server:
        client = make_client(server, connect_timeout=0.2)
        await client.start()
        await client.wait_connected(2.0)
        assert len(server.connections) >= 2
        assert client.reconnects >= 1


async def test_unreachable_server_keeps_retrying(make_client: MakeClient) -> None:
    server = await FakeAmi().start()
    await server.close()  # nothing listens on that port any more
    client = make_client(server)
    await client.start()
    with pytest.raises(AmiTimeout):
        await client.wait_connected(0.3)
    assert client.reconnects >= 2


async def test_lost_link_fails_pending_and_reconnects(
    ami: FakeAmi, make_client: MakeClient
) -> None:
    client = make_client(ami)
    order: list[str] = []
    client.add_connect_handler(lambda: order.append("connect"))  # sync works too

    async def on_lost() -> None:
        order.append("lost")

    client.add_disconnect_handler(on_lost)
    await started(client)
    ami.handlers["never"] = lambda conn, action: None
    pending = asyncio.create_task(client.send_action("Never", timeout=2.0))
    await ami.wait_until(lambda: bool(ami.actions_named("Never")))
    ami.current.abort()
    with pytest.raises(AmiNotConnected):
        await pending
    await ami.wait_logged_in(2)
    await client.wait_connected(1.0)
    await until(lambda: order == ["connect", "lost", "connect"])
    assert client._pending == {}


# -- ordering: connect handler, then the events after login --------------------------


def core_show_channels(conn: FakeConnection, action: dict[str, str]) -> None:
    action_id = action["ActionID"]
    conn.send_later(
        0.05,
        [
            ("Response", "Success"),
            ("ActionID", action_id),
            ("EventList", "start"),
            ("Message", "Channels will follow"),
        ],
    )
    for i in (1, 2):
        conn.send_later(
            0.06,
            {"Event": "CoreShowChannel", "ActionID": action_id, "Channel": f"PJSIP/100{i}-1"},
        )
    conn.send_later(0.065, {"Event": "Newchannel", "Channel": "PJSIP/9-1"})  # not part of it
    conn.send_later(
        0.07,
        {
            "Event": "CoreShowChannelsComplete",
            "ActionID": action_id,
            "EventList": "Complete",
            "ListItems": "2",
        },
    )


async def test_connect_handler_runs_before_later_events(
    ami: FakeAmi, make_client: MakeClient
) -> None:
    client = make_client(ami)
    log: list[str] = []
    ami.handlers["coreshowchannels"] = core_show_channels

    async def resync() -> None:
        log.append("resync-start")
        resp, items = await client.send_list_action("CoreShowChannels")
        assert is_success(resp)
        log.append(f"resync-done:{len(items)}")

    client.add_connect_handler(resync)
    client.add_event_handler(lambda msg: log.append(msg["Event"]))
    await started(client)
    # FullyBooted was written right after the Login response, before the resync
    # even started, yet it is handled after it.
    await until(lambda: "Newchannel" in log)
    assert log == ["resync-start", "resync-done:3", "FullyBooted", "Newchannel"]


async def test_list_action_collects_its_events(ami: FakeAmi, make_client: MakeClient) -> None:
    client = await started(make_client(ami))
    seen = collect(client)
    ami.handlers["coreshowchannels"] = core_show_channels
    resp, items = await client.send_list_action("CoreShowChannels")
    assert is_success(resp)
    assert resp["EventList"] == "start"
    assert names(items) == ["CoreShowChannel", "CoreShowChannel", "CoreShowChannelsComplete"]
    assert items[-1]["ListItems"] == "2"
    await until(lambda: "Newchannel" in names(seen))
    assert "CoreShowChannel" not in names(seen)
    assert "CoreShowChannelsComplete" not in names(seen)
    assert client._pending == {}


async def test_list_action_error_returns_empty_list(ami: FakeAmi, make_client: MakeClient) -> None:
    client = await started(make_client(ami))

    async def no_such(conn: FakeConnection, action: dict[str, str]) -> None:
        await conn.send(
            {"Response": "Error", "ActionID": action["ActionID"], "Message": "No such channel"}
        )

    ami.handlers["status"] = no_such
    resp, items = await client.send_list_action("Status", {"Channel": "PJSIP/x"})
    assert resp["Message"] == "No such channel"
    assert items == []


async def test_list_action_timeout(ami: FakeAmi, make_client: MakeClient) -> None:
    client = await started(make_client(ami))
    ami.handlers["coreshowchannels"] = lambda conn, action: conn.send_later(
        0.0, {"Response": "Success", "ActionID": action["ActionID"], "EventList": "start"}
    )  # ... and the list never completes
    with pytest.raises(AmiTimeout):
        await client.send_list_action("CoreShowChannels", timeout=0.1)
    assert client._pending == {}


async def test_command_returns_output(ami: FakeAmi, make_client: MakeClient) -> None:
    client = await started(make_client(ami))

    async def command(conn: FakeConnection, action: dict[str, str]) -> None:
        if action["Command"] == "core show version":
            await conn.send(
                [
                    ("Response", "Success"),
                    ("ActionID", action["ActionID"]),
                    ("Message", "Command output follows"),
                    ("Output", "Asterisk 22.1.0 built by root"),
                    ("Output", "second line"),
                ]
            )
        else:
            await conn.send(
                [
                    ("Response", "Error"),
                    ("ActionID", action["ActionID"]),
                    ("Message", "Command output follows"),
                    ("Output", "No such command 'bogus'"),
                ]
            )

    ami.handlers["command"] = command
    assert await client.command("core show version") == "Asterisk 22.1.0 built by root\nsecond line"
    with pytest.raises(AmiError, match="No such command"):
        await client.command("bogus")


# -- close() -----------------------------------------------------------------------------


async def test_close_is_idempotent_and_fails_pending(ami: FakeAmi, make_client: MakeClient) -> None:
    client = await started(make_client(ami))
    ami.handlers["never"] = lambda conn, action: None
    pending = asyncio.create_task(client.send_action("Never", timeout=5.0))
    await ami.wait_until(lambda: bool(ami.actions_named("Never")))
    started_at = time.monotonic()
    await asyncio.gather(client.close(), client.close())
    await client.close()
    assert time.monotonic() - started_at < 1.0
    with pytest.raises(AmiNotConnected):
        await pending
    assert not client.connected
    assert client._pending == {}
    with pytest.raises(AmiNotConnected):
        await client.send_action("Ping")
    await ami.wait_until(lambda: bool(ami.actions_named("Logoff")))
    with pytest.raises(AmiError):
        await client.start()


async def test_close_without_start(ami: FakeAmi, make_client: MakeClient) -> None:
    client = make_client(ami)
    await client.close()
    await client.close()
    assert not client.connected


async def test_handler_may_await_actions_and_close(ami: FakeAmi, make_client: MakeClient) -> None:
    client = make_client(ami)
    done: list[str] = []

    async def on_event(msg: Message) -> None:
        if msg.get("Event") == "Stop":
            pong = await client.send_action("Ping")  # resolved by the reader, no deadlock
            done.append(pong["Ping"])
            await client.close()
            done.append("closed")

    client.add_event_handler(on_event)
    await started(client)
    await ami.send_event({"Event": "Stop"})
    await until(lambda: done == ["Pong", "closed"])
    assert not client.connected
    await client.close()
