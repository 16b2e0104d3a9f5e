"""Checks of what Asterisk runs: modules, the *1 feature and its subroutine, the dial
paths of the directory's extensions, their endpoints."""

from __future__ import annotations

import re
from collections.abc import Collection

from pbx_bridge.directory.models import Extension
from pbx_bridge.doctor import dialplan
from pbx_bridge.doctor.probe import Denied, Pbx
from pbx_bridge.doctor.report import Finding, cannot, failed, passed

# Every module marked "required" in asterisk-conf/modules.conf (a unit test keeps the two
# in step), and the PJSIP stack the directory's devices are endpoints of.
REQUIRED_MODULES = (
    "pbx_config", "app_stack", "app_mixmonitor", "app_verbose", "app_userevent", "func_db",
    "func_channel", "func_cut", "func_logic", "func_sha1", "func_strings",
    "bridge_builtin_features", "format_wav", "format_wav_gsm", "codec_gsm",
    "res_pjsip", "chan_pjsip", "func_timeout", "res_musiconhold", "app_softhangup",
)
SUBROUTINE = "pbx-bridge-rec"
_FEATURE = re.compile(r"^\*1\s*,\s*self(?:/\w+)?\s*,\s*Gosub\(\s*pbx-bridge-rec\s*,\s*toggle\s*,"
                      r"\s*1\s*\)", re.IGNORECASE)
_RESTORE = "merge asterisk-conf/features.conf [applicationmap] pbxrec, then 'module reload " \
           "features'"
_DIALPLAN_RIGHTS = "give the bridge's AMI user write class reporting (ShowDialPlan)"


async def modules(pbx: Pbx) -> Finding:
    missing = []
    for name in REQUIRED_MODULES:
        try:
            resp = await pbx.action("ModuleCheck", {"Module": name})
        except Denied:
            return cannot("modules", "ModuleCheck refused (write class system)",
                          "give the bridge's AMI user write class system")
        if resp.get("Response") != "Success":
            missing.append(name)
    if missing:
        lines = " ".join(f"require = {m}.so" for m in missing)
        return failed("modules", "not loaded: " + ", ".join(missing),
                      f"modules.conf [modules]: {lines} (load = with autoload = no); then "
                      "restart Asterisk (README, 'Wiring it to an existing PBX', step 3)")
    return passed("modules", f"{len(REQUIRED_MODULES)} required modules loaded")


async def star1_feature(pbx: Pbx) -> tuple[Finding, str | None]:
    """The dynamic feature that runs the subroutine on *1, and no other feature on *1.
    Also returns the feature's name (for DYNAMIC_FEATURES), "" when none, None when
    features.conf cannot be read with these rights."""
    try:
        features = await pbx.config("features.conf")
    except Denied:
        return cannot("star1-feature", "GetConfig refused (write class system)",
                      "give the bridge's AMI user write class system"), None
    if features is None:
        return failed("star1-feature", "no features.conf", _RESTORE), ""
    names = [k for cat, items in features if cat == "applicationmap" for k, v in items
             if _FEATURE.match(v)]
    clash = [f"{cat} {k}" for cat, items in features if cat in ("featuremap", "applicationmap")
             for k, v in items if v.split(",", 1)[0].strip() == "*1" and k not in names]
    if clash:
        return failed("star1-feature", f"*1 is also {', '.join(clash)} (the old one-touch "
                      "recording?)", "remove it or move it to another key: *1 belongs to "
                      "pbxrec (README, 'Wiring it to an existing PBX')"), names[0] if names else ""
    if not names:
        return failed("star1-feature", "no [applicationmap] entry runs "
                      f"Gosub({SUBROUTINE},toggle,1) on *1", _RESTORE), ""
    return passed("star1-feature", f"[applicationmap] {names[0]} => *1 runs {SUBROUTINE}"), \
        names[0]


async def subroutine(pbx: Pbx) -> Finding:
    hint = (f"merge the [{SUBROUTINE}] context of asterisk-conf/extensions.conf as shipped, "
            "then 'dialplan reload'")
    try:
        rows = dialplan.steps(await pbx.dialplan())
    except Denied:
        return cannot("star1-subroutine", "ShowDialPlan refused", _DIALPLAN_RIGHTS)
    mine = [s for s in rows if s.context == SUBROUTINE]
    entries = {s.exten for s in mine}
    if not {"s", "toggle"} <= entries:
        return failed("star1-subroutine", f"context [{SUBROUTINE}] with extensions s and "
                      "toggle not in the running dialplan", hint)
    if not any(s.app == "MixMonitor" and "i(PBX_RECID)" in s.data for s in mine):
        return failed("star1-subroutine", f"[{SUBROUTINE}] is an older copy (no "
                      "MixMonitor i(PBX_RECID))", hint)
    return passed("star1-subroutine", f"[{SUBROUTINE}] s and toggle in the running dialplan")


async def dynamic_features(pbx: Pbx, extensions: Collection[Extension],
                           feature: str | None) -> Finding:
    """``extensions``: those on this PBX node (all of them with one node)."""
    check = "dynamic-features"
    hint = (f"Set(__DYNAMIC_FEATURES={feature or 'pbxrec'}) before each Dial of the "
            "device, then 'dialplan reload'")
    try:
        rows = dialplan.steps(await pbx.dialplan())
    except Denied:
        return cannot(check, "ShowDialPlan refused", _DIALPLAN_RIGHTS)
    if feature is None:
        return cannot(check, "the *1 feature's name is in features.conf (GetConfig refused)",
                      "give the bridge's AMI user write class system")
    if not feature:
        return failed(check, "no *1 feature to set (see star1-feature)", _RESTORE)
    bad, undialled, paths = [], [], 0
    for ext in extensions:
        found = dialplan.dial_paths(rows, ext.device, feature)
        paths += len(found)
        if not found:
            undialled.append(ext.number)
        bad += [f"{ext.number} at {s.context},{s.exten},{s.priority}"
                for s, ok in found.items() if not ok]
    if bad:
        return failed(check, f"no DYNAMIC_FEATURES={feature} before the Dial of "
                      + "; ".join(bad[:5]) + ("; ..." if len(bad) > 5 else ""), hint)
    if undialled:
        return failed(check, "no Dial of the device of " + ", ".join(undialled[:5])
                      + " in the running dialplan", "dial each extension's device "
                      "(Dial(PJSIP/<endpoint>,...)) with " + hint)
    return passed(check, f"{feature} set on all {paths} dial paths of "
                  f"{len(extensions)} extensions")


async def endpoints(pbx: Pbx, extensions: Collection[Extension]) -> Finding:
    try:
        rows = await pbx.list_action("PJSIPShowEndpoints")
    except Denied:
        return cannot("endpoints", "PJSIPShowEndpoints refused (write class system)",
                      "give the bridge's AMI user write class system")
    except LookupError:
        rows = []  # Asterisk answers an error when there is no endpoint at all
    known = {r.get("ObjectName", "") for r in rows if r.get("Event") == "EndpointList"}
    missing = [f"{e.number} ({e.device})" for e in extensions
               if not (e.device.upper().startswith("PJSIP/") and e.device[6:] in known)]
    if missing:
        return failed("endpoints", "no PJSIP endpoint for " + ", ".join(missing[:5]),
                      "add the endpoint to pjsip.conf ('module reload res_pjsip.so') or fix "
                      "the extension's device in the directory file and 'directory load' it")
    return passed("endpoints", f"all {len(extensions)} extensions' devices "
                  "are PJSIP endpoints")
