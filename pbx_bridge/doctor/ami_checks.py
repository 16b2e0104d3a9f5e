"""Checks of the AMI side: the bridge's privileges and manager.conf's settings."""

from __future__ import annotations

from pbx_bridge.calls.clicktocall import CTC_VAR
from pbx_bridge.doctor.probe import Denied, Pbx, values
from pbx_bridge.doctor.report import Finding, cannot, failed, passed
from pbx_bridge.recording.variables import MIXMONITOR_FILE_VAR, REC_VAR, RECPAUSED_VAR

# The channel variables every AMI event must carry (manager.conf [general] channelvars).
CHANNELVARS = ("PBX_VIEW", REC_VAR, RECPAUSED_VAR, MIXMONITOR_FILE_VAR, CTC_VAR)
# A channel that does not exist: the bridge's own actions are sent for it, so Asterisk
# answers "No such channel" when the class allows the action, "Permission denied" if not.
_NO_CHANNEL = "PJSIP/pbx-bridge-doctor-no-such-channel"
# The actions the bridge sends -> the classes that allow them (any one of them).
PROBES: tuple[tuple[str, dict[str, str], str], ...] = (
    ("MixMonitor", {"Channel": _NO_CHANNEL, "File": "pbx-bridge-doctor.wav"}, "system"),
    ("StopMixMonitor", {"Channel": _NO_CHANNEL}, "system or call"),
    ("MixMonitorMute", {"Channel": _NO_CHANNEL, "Direction": "both", "State": "0"},
     "system or call"),
    ("Setvar", {"Channel": _NO_CHANNEL, "Variable": "PBX_VIEW", "Value": ""}, "call"),
    ("Getvar", {"Channel": _NO_CHANNEL, "Variable": REC_VAR}, "call or reporting"),
    ("DBDel", {"Family": "pbx_bridge", "Key": "doctor/no-such-key"}, "system"),
    ("ShowDialPlan", {"Context": "pbx-bridge-doctor-no-such-context"}, "reporting"),
    # Call control: BlindTransfer (Transfer, TransferToVoicemail) and Originate (PickUp,
    # BargeIn, Whisper, Monitor). A channel without a technology is refused as "Invalid
    # channel" before anything is dialled.
    ("BlindTransfer", {"Channel": _NO_CHANNEL, "Context": "pbx-bridge-dial", "Exten": "0"},
     "call"),
    ("Originate", {"Channel": "pbx-bridge-doctor-invalid", "Application": "Wait",
                   "Data": "1"}, "originate"),
    # Click-to-call too. Async to a device that does not exist: Asterisk queues it (or says
    # "Permission denied"), then fails to create the channel; no call is placed.
    ("Originate", {"Channel": _NO_CHANNEL, "Context": "pbx-bridge-doctor-no-such-context",
                   "Exten": "s", "Priority": "1", "Async": "true"}, "originate"),
)
READ_CLASSES = ("call", "user")
_RIGHTS = ("read = call,user and write = system,call,reporting,originate in the bridge's "
           "manager.conf user")


async def ami_write(pbx: Pbx) -> Finding:
    refused = []
    for action, headers, classes in PROBES:
        try:
            await pbx.action(action, headers)
        except Denied:
            refused.append(f"{action} (needs {classes})")
    if refused:
        return failed("ami-write", "refused: " + ", ".join(refused),
                      f"set {_RIGHTS}, then 'manager reload'")
    return passed("ami-write", f"the bridge's {len(PROBES)} kinds of actions are allowed")


async def ami_no_command(pbx: Pbx) -> Finding:
    try:
        await pbx.action("Command", {"Command": "core show version"})
    except Denied:
        return passed("ami-least-privilege", "no 'command' class (the CLI is refused)")
    return failed("ami-least-privilege", "the bridge's AMI user may run CLI commands",
                  "remove 'command' (and 'config', 'all') from its write =")


async def ami_read(pbx: Pbx, username: str) -> Finding:
    try:
        manager = await pbx.config("manager.conf")
    except Denied:
        return cannot("ami-read", "GetConfig refused (write class system)", _RIGHTS)
    if manager is None:
        return cannot("ami-read", "manager.conf not readable through GetConfig", _RIGHTS)
    reads = values(manager, username, "read")
    if not reads:
        return failed("ami-read", f"no read = in manager.conf [{username}]", _RIGHTS)
    classes = {c.strip().lower() for r in reads for c in r.split(",")}
    missing = [c for c in READ_CLASSES if c not in classes and "all" not in classes]
    if missing:
        return failed("ami-read", f"[{username}] read = {reads[-1]}: lacks {', '.join(missing)}"
                      " (channel/MixMonitor events, the *1 UserEvent)", _RIGHTS)
    return passed("ami-read", f"[{username}] read = {reads[-1]}")


async def _general(pbx: Pbx, check: str, key: str) -> tuple[str | None, Finding | None]:
    try:
        manager = await pbx.config("manager.conf")
    except Denied:
        return None, cannot(check, "GetConfig refused (write class system)", _RIGHTS)
    if manager is None:
        return None, cannot(check, "manager.conf not readable through GetConfig", _RIGHTS)
    found = values(manager, "general", key)
    return (found[-1] if found else ""), None


async def channelvars(pbx: Pbx) -> Finding:
    value, trouble = await _general(pbx, "channelvars", "channelvars")
    if trouble is not None or value is None:
        return trouble or cannot("channelvars", "?", _RIGHTS)
    have = {v.strip() for v in value.split(",")}
    missing = [v for v in CHANNELVARS if v not in have]
    if missing:
        wanted = ",".join(sorted(have - set(CHANNELVARS)) + list(CHANNELVARS))
        return failed("channelvars", f"manager.conf channelvars lacks {', '.join(missing)}",
                      f"[general] channelvars = {wanted}, then 'manager reload'")
    return passed("channelvars", "manager.conf channelvars has " + ",".join(CHANNELVARS))


async def timestampevents(pbx: Pbx) -> Finding:
    value, trouble = await _general(pbx, "timestampevents", "timestampevents")
    if trouble is not None or value is None:
        return trouble or cannot("timestampevents", "?", _RIGHTS)
    if value.lower() not in ("yes", "true", "on", "1"):
        return failed("timestampevents", "events carry no Timestamp (call times become the "
                      "bridge's clock)", "[general] timestampevents = yes in manager.conf, "
                      "then 'manager reload'")
    return passed("timestampevents", "events carry Asterisk's Timestamp")
