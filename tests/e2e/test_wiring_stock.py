"""README "Wiring it to an existing PBX", followed to the letter on Debian's stock
/etc/asterisk (package asterisk-config) as "the existing PBX": two phones of its own
(PJSIP endpoints 0005*101 and 0005*102 in a context [office]) and Asterisk's own one-touch
recording on *1 (automixmon, Dial option X). Every snippet the test adds is quoted from
the README (and checked to be there), then `pbx-bridge doctor` must pass and a real call
is recorded through the API and with *1; the files Asterisk wrote are opened."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from devtools.phones import Phone
from devtools.sandbox import DEFAULT_CONF_DIR, REPO_DIR, Sandbox, stock_conf_dir
from pbx_bridge.api.app import create_app
from pbx_bridge.config import Settings
from pbx_bridge.directory.store import Directory
from pbx_bridge.doctor.run import diagnose
from pbx_bridge.server import Services
from tests.support.audio import WAVE_FORMAT_PCM, inspect_wav, wait_file_complete
from tests.support.bridge import eventually, wait_ready
from tests.support.doctor import sandbox_with

README = (REPO_DIR / "README.md").read_text()
CALLER, CALLEE = "0005*101", "0005*102"

# The admin's PBX before pbx_bridge: stock files plus its own phones and dialplan.
EXISTING_PJSIP = """
[transport-udp]
type = transport
protocol = udp
bind = 127.0.0.1:5060
[office-phone](!)
type = endpoint
context = office
disallow = all
allow = ulaw,alaw
direct_media = no
rtp_symmetric = yes
force_rport = yes
rewrite_contact = yes
dtmf_mode = rfc4733
"""
EXISTING_DIALPLAN = "\n[office]\nexten => _0005*1XX,1,Dial(PJSIP/${EXTEN},30,X)\n"


def _phone(name: str) -> str:
    return (f"[{name}](office-phone)\nauth = {name}\naors = {name}\n"
            f"[{name}]\ntype = auth\nauth_type = userpass\nusername = {name}\n"
            f"password = CHANGE-ME\n[{name}]\ntype = aor\nmax_contacts = 1\n"
            "remove_existing = yes\n")


def existing_pbx(conf: Path) -> None:
    with (conf / "pjsip.conf").open("a") as f:
        f.write(EXISTING_PJSIP + _phone(CALLER) + _phone(CALLEE))
    with (conf / "extensions.conf").open("a") as f:
        f.write(EXISTING_DIALPLAN)
    features = conf / "features.conf"
    features.write_text(features.read_text().replace("[featuremap]\n",
                                                     "[featuremap]\nautomixmon => *1\n", 1))


def readme_block(after: str) -> str:
    """The first fenced block of the README's wiring section after the text `after`."""
    section = README[README.index("## Wiring it to an existing PBX"):]
    rest = section[section.index(after):]
    m = re.search(r"```[a-z]*\n(.*?)```", rest, re.DOTALL)
    assert m is not None, after
    return "\n".join(line[3:] if line.startswith("   ") else line
                     for line in m[1].splitlines()) + "\n"


def _insert_after(path: Path, header: str, text: str) -> None:
    content = path.read_text()
    assert header in content, (path.name, header)
    path.write_text(content.replace(header, header + text, 1))


def wire(conf: Path) -> None:
    """Steps 2 to 5 of the README, on the files of `conf`."""
    manager = conf / "manager.conf"
    _insert_after(manager, "[general]\n", readme_block("in its `[general]` section add"))
    with manager.open("a") as f:
        f.write("\n" + readme_block("Then add the bridge's user at the end"))
    _insert_after(conf / "modules.conf", "[modules]\n", readme_block("**`modules.conf`**"))
    features = conf / "features.conf"
    _insert_after(features, "[applicationmap]\n", readme_block("under `[applicationmap]` add"))
    assert "move it to another key, e.g. `automixmon => *3`" in README
    features.write_text(features.read_text().replace("automixmon => *1", "automixmon => *3"))
    ours = (DEFAULT_CONF_DIR / "extensions.conf").read_text()
    assert "append the `[pbx-bridge-rec]` context" in README
    dialplan = conf / "extensions.conf"
    text = dialplan.read_text() + "\n" + ours[ours.index("[pbx-bridge-rec]\n"):]
    example = readme_block("add `U(pbx-bridge-rec)` to that `Dial`'s")
    assert "Set(__DYNAMIC_FEATURES=pbxrec)" in example and ",U(pbx-bridge-rec))" in example
    text = text.replace("exten => _0005*1XX,1,Dial(PJSIP/${EXTEN},30,X)",
                        "exten => _0005*1XX,1,Set(__DYNAMIC_FEATURES=pbxrec)\n"
                        " same => n,Dial(PJSIP/${EXTEN},30,XU(pbx-bridge-rec))")
    dialplan.write_text(text)


def _directory(tmp_path: Path) -> Directory:
    toml = tmp_path / "office.toml"
    toml.write_text(
        '[[organizations]]\nid = 5\nname = "Office"\ncode = "0005"\n'
        '[[users]]\nid = 50\nname = "Ann"\nrole = "user"\norganization = 5\n'
        + "".join(f'[[extensions]]\nnumber = "{n}"\nowner = 50\ndevice = "PJSIP/{n}"\n'
                  'recording = { enabled = true, trigger = "star1", format = "wav" }\n'
                  for n in (CALLER, CALLEE)))
    directory = Directory.open(tmp_path / "directory.sqlite3")
    directory.load_toml(toml)
    return directory


def _settings(sb: Sandbox, tmp_path: Path) -> Settings:
    config = readme_block("**Configure the bridge first**")
    assert 'monitor_dir = "/var/spool/asterisk/monitor"' in config
    # Step 1's settings, pointed at this sandbox's port and folders.
    return Settings(ami={"port": sb.ami_port, "username": "pbx-bridge",
                         "secret": sb.secrets.ami},
                    database={"url": f"sqlite:///{tmp_path / 'directory.sqlite3'}"},
                    recordings={"monitor_dir": str(sb.monitor_dir), "host_root": str(sb.root),
                                "settle_interval": 0.2})


@asynccontextmanager
async def _serving(settings: Settings, directory: Directory) -> AsyncIterator[tuple[str, str]]:
    bridge = Services(settings, directory)
    server = TestServer(create_app(settings, directory, bridge), host="127.0.0.1")
    await server.start_server()
    try:
        await wait_ready(bridge)
        client_id, _ = directory.create_app(50, "wiring")
        yield str(server.make_url("")).rstrip("/"), directory.issue_token(client_id)[0]
    finally:
        await server.close()


async def _record_through_the_api(http: aiohttp.ClientSession, base: str, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    url = f"{base}/uapi/phoneCalls/@me/{CALLER}"
    for _ in range(100):
        async with http.get(url, headers=auth) as r:
            calls = (await r.json())["entry"] if r.status == 200 else []
        if calls and calls[0]["phoneCallView"][0].get("status") != "ringing":
            break
        await asyncio.sleep(0.1)
    (call,) = calls
    view = call["phoneCallView"][0]["id"]
    for action in ("StartRecording", "StopRecording"):
        async with http.put(f"{url}/{call['id']}", headers=auth,
                            json={"action": action, "phoneCallViewId": view}) as r:
            assert r.status == 200, await r.text()
        await asyncio.sleep(2.0)


@pytest.mark.timeout(180)
async def test_the_readme_wires_a_stock_debian_pbx(tmp_path) -> None:
    conf = tmp_path / "stock"
    shutil.copytree(stock_conf_dir(), conf)
    existing_pbx(conf)
    wire(conf)
    directory = _directory(tmp_path)
    with sandbox_with(tmp_path / "run", conf_dir=conf, foreign=True) as sb:
        settings = _settings(sb, tmp_path)
        async with _serving(settings, directory) as (base, token):
            found = await diagnose(settings, directory)
            assert len(found) == 13 and [f.line() for f in found if f.status != "pass"] == []
            a, b = Phone(sb, CALLER, tone_hz=440), Phone(sb, CALLEE, tone_hz=1000)
            try:
                await a.start()
                await b.start()
                await a.dial(CALLEE)
                await b.wait_event("CALL_INCOMING")
                await b.accept()
                await a.wait_event("CALL_ESTABLISHED")
                async with aiohttp.ClientSession() as http:
                    await _record_through_the_api(http, base, token)
                await b.send_dtmf("*1")  # the callee, from the handset
                await eventually(lambda: any((sb.monitor_dir / "5" / CALLEE).rglob("*.wav")),
                                 what="the *1 recording's file")
                await asyncio.sleep(2.0)
                await b.send_dtmf("*1")
                await asyncio.sleep(0.5)
                await a.hangup()
            finally:
                await a.stop()
                await b.stop()
    for ext in (CALLER, CALLEE):
        (path,) = (sb.monitor_dir / "5" / ext).rglob("*.wav")
        await wait_file_complete(path)
        wav = inspect_wav(path)
        assert wav.format_tag == WAVE_FORMAT_PCM and wav.duration > 1.0 and wav.rms > 100, wav
