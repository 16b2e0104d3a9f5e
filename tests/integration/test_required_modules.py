"""The "required" set of asterisk-conf/modules.conf, derived rather than listed by hand:
every dialplan function and application the *1 subroutine and the lines the bridge
relies on use is looked up in Asterisk's own documentation (core-en_US.xml in the
sandbox root names each one's module), and that module must be marked "required".
(tests/e2e/test_required_modules.py then boots with only that set and records.)"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from devtools.sandbox import DEFAULT_CONF_DIR, ensure_root
from tests.support.modules import marked_modules

# What the subroutine's file suffixes need to be written (a format is no function):
# .wav -> format_wav; .WAV (wav49) -> format_wav_gsm, which encodes with codec_gsm.
FORMAT_MODULES = {"format_wav", "format_wav_gsm", "codec_gsm"}
# The AMI side: the MixMonitor/StopMixMonitor actions and MIXMONITOR() (app_mixmonitor,
# found from the dialplan too), the *1 dynamic feature's bridge hooks.
AMI_MODULES = {"app_mixmonitor", "bridge_builtin_features", "pbx_config"}


def _docs() -> dict[tuple[str, str], str]:
    xml = ensure_root() / "usr/share/asterisk/documentation/core-en_US.xml"
    out = {}
    for el in ET.parse(xml).getroot():
        if el.tag in ("application", "function") and el.get("module"):
            out[(el.tag, el.get("name", "").upper())] = el.get("module", "")
    return out


def _bridge_dialplan() -> str:
    """The [pbx-bridge-rec] context, the Set(__DYNAMIC_FEATURES...) lines and the
    features.conf application map: the dialplan pbx_bridge relies on."""
    ext = (DEFAULT_CONF_DIR / "extensions.conf").read_text()
    sub = ext[ext.index("\n[pbx-bridge-rec]\n"):]
    dyn = "\n".join(ln for ln in ext.splitlines() if "DYNAMIC_FEATURES" in ln)
    features = (DEFAULT_CONF_DIR / "features.conf").read_text()
    appmap = features[features.index("[applicationmap]"):]
    lines = [ln.split(";", 1)[0] if not ln.lstrip().startswith("exten") else ln
             for ln in (sub + "\n" + dyn + "\n" + appmap).splitlines()]
    return "\n".join(ln for ln in lines if not ln.lstrip().startswith(";"))


def used_names(dialplan: str) -> tuple[set[str], set[str]]:
    apps = set(re.findall(r"(?:=>\s*(?:[\w*]+,\s*)?(?:\d+|n)(?:\([\w-]+\))?,|,self,)\s*(\w+)\(",
                          dialplan))
    # read as ${FUNC(...)}, written as Set(FUNC(...)=...) (TIMEOUT(absolute)), or LOCAL()
    funcs = (set(re.findall(r"\$\{(\w+)\(", dialplan)) | set(re.findall(r"\b(LOCAL)\(", dialplan))
             | set(re.findall(r"\bSet\((\w+)\(", dialplan)))
    return apps, funcs


def derived_required() -> set[str]:
    docs = _docs()
    apps, funcs = used_names(_bridge_dialplan())
    modules = set()
    for kind, names in (("application", apps), ("function", funcs)):
        for name in names:
            module = docs.get((kind, name.upper()))
            assert module is not None, f"{kind} {name}: not in Asterisk's documentation"
            modules.add(module)
    return (modules - {"builtin", "pbx"}) | FORMAT_MODULES | AMI_MODULES


def test_the_dialplan_parser_sees_what_the_subroutine_uses() -> None:
    apps, funcs = used_names(_bridge_dialplan())
    assert {"Set", "GotoIf", "MixMonitor", "StopMixMonitor", "Log", "UserEvent",
            "Verbose", "Return", "Gosub"} <= apps, apps
    assert {"DB", "CHANNEL", "CUT", "SHA1", "IF", "STRFTIME", "REGEX", "MIXMONITOR",
            "LOCAL"} <= funcs, funcs


def test_every_module_the_bridge_relies_on_is_marked_required() -> None:
    marks = marked_modules((DEFAULT_CONF_DIR / "modules.conf").read_text())
    required = {m for m, why in marks.items() if why == "required"}
    needed = derived_required()
    assert needed - required == set(), f"used but not marked required: {needed - required}"
    # And nothing is marked "required" that the bridge does not use (the demo's needs
    # are marked "required for the demo").
    assert required - needed == set(), f"marked required but unused: {required - needed}"


def test_modules_conf_names_exist_in_this_asterisk() -> None:
    moddir = Path(ensure_root()) / "usr/lib/x86_64-linux-gnu/asterisk/modules"
    for module in marked_modules((DEFAULT_CONF_DIR / "modules.conf").read_text()):
        assert (moddir / f"{module}.so").exists(), module
