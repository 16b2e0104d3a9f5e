"""No event is lost on the way in: an event that carries a `Response` header of its own
(Asterisk's OriginateResponse does) reaches the event handlers, from the real Asterisk,
instead of being taken for the answer to an action and dropped."""

from __future__ import annotations

from pbx_bridge.phones import Phone


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
