"""The *1 subroutine's report of a recording it did not start (UserEvent PbxBridgeRec),
from *1 or from the "always" start on answer (header ``Mode``: ``*1`` or ``always``).

Said in the bridge's log (the subroutine logs in Asterisk's too). Nothing changes on the
view: it shows `recording` only once a MixMonitor really runs (MixMonitorStart).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from pbx_bridge.recording.variables import STAR1_EVENT

log = logging.getLogger("pbx_bridge.recording")


def is_star1_report(ev: Mapping[str, str]) -> bool:
    return ev.get("Event") == "UserEvent" and ev.get("UserEvent") == STAR1_EVENT


def log_star1_report(ev: Mapping[str, str], extension_of: Callable[[str], str | None]) -> bool:
    """Log the report; True if it is a failure (not a refusal by the policy)."""
    channel = ev.get("Channel", "?")
    ext = extension_of(channel) or "-"
    result = ev.get("Result", "")
    if result == "denied":
        log.info("*1 on %s (extension %s): recording not allowed", channel, ext)
        return False
    mode = "always" if ev.get("Mode") == "always" else "*1"  # never echo a raw header
    log.warning(
        "%s on %s (extension %s): recording NOT started (%s: %s); check that every "
        "module marked required in asterisk-conf/modules.conf is loaded",
        mode, channel, ext, result or "failed", ev.get("Reason", "unknown"),
    )
    return True
