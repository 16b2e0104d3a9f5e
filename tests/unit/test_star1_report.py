"""The subroutine's failure report names what tried: *1 or the "always" start on answer."""

from __future__ import annotations

import logging

from pbx_bridge.recording.star1 import log_star1_report


def _report(mode: str | None) -> dict[str, str]:
    ev = {"Event": "UserEvent", "UserEvent": "PbxBridgeRec", "Channel": "PJSIP/0003*213-1",
          "Result": "failed", "Reason": "mixmonitor"}
    return ev if mode is None else ev | {"Mode": mode}


def test_the_report_names_the_mode(caplog) -> None:
    caplog.set_level(logging.INFO, logger="pbx_bridge")
    for mode in ("always", "*1", None, "x\nforged"):
        assert log_star1_report(_report(mode), lambda _c: "0003*213")
    starts = [r.getMessage().split(" on ")[0] for r in caplog.records]
    assert starts == ["always", "*1", "*1", "*1"]
