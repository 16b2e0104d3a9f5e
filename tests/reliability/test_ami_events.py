"""No event is lost on the way in: an event that carries a `Response` header of its own
(Asterisk's OriginateResponse does) reaches the event handlers, from the real Asterisk,
instead of being taken for the answer to an action and dropped."""

from __future__ import annotations

from devtools.phones import Phone


async def test_originate_response_is_an_event(pbx, ami_log) -> None:
    phone = await Phone(pbx, "orig", register=False, auto_answer=True).start()
    try:
        resp = await ami_log.client.send_action(
            "Originate",
            {
                "Channel": f"PJSIP/0003*210/sip:orig@127.0.0.1:{phone.sip_port}",
                "Context": "public-sim",
                "Exten": "7778888",
                "Priority": "1",
                "Async": "true",
            },
        )
        assert resp["Response"] == "Success" and "Event" not in resp
        ev = await ami_log.wait_for("OriginateResponse", ActionID=resp["ActionID"])
        assert ev["Response"] == "Success" and ev["Channel"].startswith("PJSIP/0003*210-")
        pong = await ami_log.client.send_action("Ping")
        assert pong["Response"] == "Success"
    finally:
        await phone.stop()


async def test_originate_responses_make_no_ghost_calls(pbx, observer, tmp_path) -> None:
    """OriginateResponse events (now delivered) describe an originate's outcome, not a
    channel: a failed one says `Uniqueid: <unknown>` with the dialled string as Channel.
    The bridge must not turn them into channels or calls."""
    from pbx_bridge.calls.tracker import call_id
    from tests.reliability.support import Calls, serve, wait_consistent

    calls = Calls(pbx, observer.client, observer)
    try:
        async with serve(pbx, tmp_path) as api:
            # No phone registered as 0003*210: the originate fails at once.
            resp = await observer.client.send_action("Originate", {
                "Channel": "PJSIP/0003*210", "Context": "public-sim", "Exten": "7778888",
                "Priority": "1", "Async": "true"})
            ev = await observer.wait_for("OriginateResponse", ActionID=resp["ActionID"])
            assert ev["Response"] == "Failure" and ev["Uniqueid"] == "<unknown>"
            await calls.add_phones(1)
            live = await calls.start("0003*210")
            await wait_consistent(api.bridge, observer.client)
            assert "<unknown>" not in api.bridge.tracker.channels
            r = await api.list("0003*210")
            assert [e["id"] for e in r.entries] == [call_id(live.uniqueid)], r.text
    finally:
        await calls.close()
