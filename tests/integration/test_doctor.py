"""`pbx-bridge doctor` against the real sandbox Asterisk: the project's configuration
passes every check; each broken copy of it (or of the bridge's settings) fails the one
check that covers it, with that check's fix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.sandbox import Sandbox
from pbx_bridge.directory.store import Directory
from pbx_bridge.doctor.report import Finding
from pbx_bridge.doctor.run import diagnose
from tests.support.bridge import bridge_settings, demo_directory, serve_environ, start_bridge
from tests.support.doctor import Edit, replace, sandbox_with

ALL = {"ami-login", "ami-write", "ami-least-privilege", "ami-read", "channelvars",
       "timestampevents", "modules", "star1-feature", "star1-subroutine", "dynamic-features",
       "endpoints", "monitor-folder", "astdb-policy"}


def _by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


async def _doctor(sb: Sandbox, tmp_path: Path, directory: Directory, *,
                  write_policy: bool = True, **recordings: str) -> dict[str, Finding]:
    settings = bridge_settings(sb, tmp_path)
    if recordings:
        settings = settings.model_copy(update={"recordings": settings.recordings.model_copy(
            update=recordings)})
    if write_policy:  # the bridge itself writes the AstDB policy when it connects
        bridge = await start_bridge(settings, directory)
        await bridge.close()
    return _by_check(await diagnose(settings, directory))


async def test_the_projects_configuration_passes_every_check(pbx, tmp_path) -> None:
    directory = demo_directory(tmp_path)
    found = await _doctor(pbx, tmp_path, directory)
    assert set(found) == ALL
    assert [f.line() for f in found.values() if f.status != "pass"] == []


def test_the_command_exits_0_and_prints_json_when_all_pass(pbx, tmp_path) -> None:
    directory = demo_directory(tmp_path)
    import asyncio
    asyncio.run(_doctor(pbx, tmp_path, directory))  # the AstDB policy, as serve writes it
    directory.close()
    env = serve_environ(pbx, tmp_path, 1)
    proc = subprocess.run([sys.executable, "-m", "pbx_bridge.cli", "doctor", "--json"],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True and {c["check"] for c in report["checks"]} == ALL
    # One broken piece: exit 1, the failing line with its fix.
    env["PBX_BRIDGE_RECORDINGS__MONITOR_DIR"] = str(tmp_path / "nowhere")
    proc = subprocess.run([sys.executable, "-m", "pbx_bridge.cli", "doctor"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1, proc.stdout
    assert "FAIL monitor-folder: " in proc.stdout and "-> fix: " in proc.stdout


# Broken copies of asterisk-conf/: (what breaks, the check that must fail, words its
# detail and its fix must hold). Every other check passes, or says it cannot check with
# these rights, except those in ALSO_FAIL (a consequence of the same breakage).
BROKEN_CONF: dict[str, tuple[list[Edit], str, str, str]] = {
    "channelvars without PBX_RECPAUSED": (
        [replace("manager.conf", r"^channelvars = .*$", "channelvars = PBX_VIEW,PBX_REC")],
        "channelvars", "PBX_RECPAUSED", "channelvars = PBX_VIEW,PBX_REC,PBX_RECPAUSED"),
    "timestampevents off": (
        [replace("manager.conf", r"^timestampevents = yes", "timestampevents = no")],
        "timestampevents", "Timestamp", "timestampevents = yes"),
    "no read class user": (
        [replace("manager.conf", r"^read = call,user", "read = call")],
        "ami-read", "lacks user", "read = call,user"),
    "no write class system": (
        [replace("manager.conf", r"^write = system,call,reporting", "write = call,reporting")],
        "ami-write", "MixMonitor (needs system)", "write = system,call,reporting"),
    "no write class originate": (  # call control (issue 14): PickUp and the spies
        [replace("manager.conf", r"^write = system,call,reporting,originate$",
                 "write = system,call,reporting")],
        "ami-write", "Originate (needs originate)", "write = system,call,reporting,originate"),
    "write class command": (
        [replace("manager.conf", r"^write = system,call,reporting",
                 "write = system,call,reporting,command")],
        "ami-least-privilege", "CLI", "remove 'command'"),
    "func_sha1 not loaded": (
        [replace("modules.conf", r"^load = func_sha1\.so.*$", "")],
        "modules", "func_sha1", "require = func_sha1.so"),
    "automixmon on *1": (
        [replace("features.conf", r"^\[featuremap\]$", "[featuremap]\nautomixmon => *1")],
        "star1-feature", "featuremap automixmon", "move it to another key"),
    "no *1 feature": (
        [replace("features.conf", r"^pbxrec => .*$", "")],
        "star1-feature", "no [applicationmap] entry", "features.conf"),
    "an old subroutine": (
        [replace("extensions.conf", r",i\(PBX_RECID\)\)", ")")],
        "star1-subroutine", "older copy", "as shipped"),
    "no DYNAMIC_FEATURES from the carrier": (
        [replace("extensions.conf", r"(\[from-pstn\]\n(?:.*\n)*?) same => n,Set\(__DYNAMIC"
                 r"_FEATURES=pbxrec\)\n", r"\1")],
        "dynamic-features", "from-pstn,_XXXX*XXX,", "Set(__DYNAMIC_FEATURES=pbxrec)"),
}


ALSO_FAIL = {
    "no write class system": {"astdb-policy"},  # the bridge could not write it either
    "no *1 feature": {"dynamic-features"},  # no feature name to look for
}


@pytest.mark.parametrize("broken", list(BROKEN_CONF))
async def test_a_broken_configuration_fails_its_check_with_its_fix(broken, tmp_path) -> None:
    edits, check, detail, hint = BROKEN_CONF[broken]
    directory = demo_directory(tmp_path)
    with sandbox_with(tmp_path, *edits) as sb:
        found = await _doctor(sb, tmp_path, directory)
    assert found[check].status == "fail", found[check]
    assert detail in found[check].detail and hint in found[check].hint, found[check]
    others = [f.line() for name, f in found.items() if name != check and f.status == "fail"
              and name not in ALSO_FAIL.get(broken, set())]
    assert others == []  # the rest of the PBX still checks out
    unknown = [f for f in found.values() if f.status == "unknown"]
    assert all(f.detail.startswith("cannot check with these rights") for f in unknown)


async def test_missing_endpoint_policy_and_folder_and_a_wrong_secret(pbx, tmp_path) -> None:
    directory = demo_directory(tmp_path)
    extra = tmp_path / "extra.toml"
    extra.write_text('[[extensions]]\nnumber = "0003*299"\nowner = 12\n'
                     'device = "PJSIP/0003*299"\n')
    directory.load_toml(extra)
    found = await _doctor(pbx, tmp_path, directory, write_policy=False,
                          monitor_dir=str(tmp_path / "nowhere"))
    assert found["endpoints"].status == "fail" and "0003*299" in found["endpoints"].detail
    assert "pjsip.conf" in found["endpoints"].hint
    assert found["astdb-policy"].status == "fail" and "pbx-bridge serve" in \
        found["astdb-policy"].hint
    assert found["monitor-folder"].status == "fail" and "monitor_dir" in \
        found["monitor-folder"].hint
    settings = bridge_settings(pbx, tmp_path, secret="wrong-secret", connect_timeout=2.0)
    login = await diagnose(settings, directory)
    assert [(f.check, f.status) for f in login] == [("ami-login", "fail")]
    assert "refused" in login[0].detail and "secret" in login[0].hint
