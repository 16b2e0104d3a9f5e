"""What the reliability tests share: a real bridge behind the real HTTP server, live calls
on the real PBX without one SIP phone per call, Asterisk's own view of its channels and
MixMonitors, and spies that see every AMI action the bridge sends.

Live calls: Asterisk dials an extension's own PJSIP endpoint with an explicit URI towards
an auto-answering baresip (`LoadPhone`), so the answered channel is
`PJSIP/<extension>-<n>`, exactly what a phone registered as that extension would give;
it then plays the public test number's audio (`public-sim`), or dials another extension
(`from-internal`). One baresip takes several calls at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import statistics
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from devtools.phones import MAX_PHONES, Phone
from devtools.sandbox import Sandbox
from pbx_bridge.api.app import AccessLogger, create_app
from pbx_bridge.api.validation import has_control
from pbx_bridge.config import Settings
from pbx_bridge.directory.store import Directory
from pbx_bridge.pbx.ami import AmiClient
from pbx_bridge.server import Services
from tests.support.bridge import demo_directory, wait_ready
from tests.support.pbx import HARNESS_USER, EventLog

ADMIN, ORG3, JOHN, JANE, OTHER = 1, 2, 12, 13, 20
OWNER = {"0003*210": JOHN, "0003*211": JOHN, "0003*212": JANE, "0003*213": JANE,
         "0004*210": OTHER}
RECORDABLE = ("0003*210", "0003*211", "0004*210")  # recording on, triggered by *1
ALWAYS_RECORDED = ("0003*213",)  # recording on, triggered always: the bridge records it
START = {"action": "StartRecording", "format": "wav", "phoneCallViewId": "01"}
STOP = {"action": "StopRecording", "phoneCallViewId": "01"}

# Soak knobs: the defaults are the soak sizes of docs/reliability.md.
def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, str(default)))


# --------------------------------------------------------------------------- settings


def rel_settings(
    sandbox: Sandbox | None,
    tmp_path: Path,
    *,
    ami_port: int | None = None,
    http: dict[str, Any] | None = None,
    **ami: Any,
) -> Settings:
    """The integration tier's bridge settings (fast ping, 1 s backoff cap), plus http."""
    return Settings(
        ami={
            "port": ami_port or sandbox.ami_port,  # type: ignore[union-attr]
            # No sandbox: a fake AMI server (test_slow_ami), which takes any secret.
            "secret": sandbox.secrets.ami if sandbox else "fake-ami-secret",
            "ping_interval": 1.0,
            "ping_timeout": 1.0,
            "backoff_cap": 1.0,
            "action_timeout": 3.0,
            "connect_timeout": 2.0,
            **ami,
        },
        http={"request_timeout": 5.0, **(http or {})},
        database={"url": f"sqlite:///{tmp_path / 'directory.sqlite3'}"},
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- HTTP


@dataclass
class Reply:
    status: int
    body: Any  # parsed JSON, or None
    text: str
    elapsed: float
    headers: dict[str, str]

    @property
    def code(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return self.body["error"].get("code")
        return None

    @property
    def entries(self) -> list[dict]:
        if self.status == 204:
            return []
        assert self.status == 200, (self.status, self.text)
        return self.body["entry"]


@dataclass
class Api:
    http: aiohttp.ClientSession
    base: str
    bridge: Services
    directory: Directory
    app: web.Application | None = None
    tokens: dict[int, str] = field(default_factory=dict)

    def token(self, user_id: int) -> str:
        if user_id not in self.tokens:
            client_id, _ = self.directory.create_app(user_id, f"reliability-{user_id}")
            self.tokens[user_id] = self.directory.issue_token(client_id)[0]
        return self.tokens[user_id]

    async def request(
        self,
        method: str,
        path: str,
        *,
        user: int | None = ADMIN,
        token: str | None = None,
        json_body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Reply:
        hdrs = dict(headers or {})
        if token is None and user is not None:
            token = self.token(user)
        if token is not None:
            hdrs.setdefault("Authorization", f"Bearer {token}")
        t0 = time.monotonic()
        async with self.http.request(
            method, self.base + path, json=json_body, data=data, headers=hdrs,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as r:
            raw = await r.read()
            elapsed = time.monotonic() - t0
            text = raw.decode("utf-8", "replace")
            try:
                body = json.loads(text) if raw else None
            except ValueError:
                body = None
            return Reply(r.status, body, text, elapsed, dict(r.headers))

    async def list(self, ext: str, *, owner: int | str | None = None, **kw: Any) -> Reply:
        """Every call of the extension: one page of VoipNow's largest size (the default
        page holds 20)."""
        path = f"/uapi/phoneCalls/{owner or OWNER[ext]}/{ext}?count=4999"
        return await self.request("GET", path, **kw)

    async def get(self, ext: str, call_id: str, *, owner: int | str | None = None,
                  **kw: Any) -> Reply:
        path = f"/uapi/phoneCalls/{owner or OWNER[ext]}/{ext}/{call_id}"
        return await self.request("GET", path, **kw)

    async def put(self, ext: str, call_id: str, body: Any, *, owner: int | str | None = None,
                  **kw: Any) -> Reply:
        path = f"/uapi/phoneCalls/{owner or OWNER[ext]}/{ext}/{call_id}"
        return await self.request("PUT", path, json_body=body, **kw)

    async def start(self, ext: str, call_id: str, **kw: Any) -> Reply:
        return await self.put(ext, call_id, START, **kw)

    async def stop(self, ext: str, call_id: str, **kw: Any) -> Reply:
        return await self.put(ext, call_id, STOP, **kw)


async def start_server(app: web.Application) -> TestServer:
    """The real aiohttp server on a loopback port, with the access log and keep-alive
    timeout of `pbx-bridge serve` (web.run_app)."""
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(
        access_log=logging.getLogger("pbx_bridge.access"),
        access_log_class=AccessLogger,
        keepalive_timeout=75.0,
    )
    return server


@contextlib.asynccontextmanager
async def serve(
    pbx: Sandbox | None,
    tmp_path: Path,
    *,
    ami_port: int | None = None,
    http: dict[str, Any] | None = None,
    ready: bool = True,
    **ami: Any,
) -> AsyncIterator[Api]:
    """A real Bridge connected to `ami_port` (default: the sandbox's AMI) behind the real
    HTTP server on a loopback port."""
    directory = demo_directory(tmp_path)
    settings = rel_settings(pbx, tmp_path, ami_port=ami_port, http=http, **ami)
    bridge = Services(settings, directory)
    app = create_app(settings, directory, bridge)
    server = await start_server(app)
    try:
        if ready:
            await wait_ready(bridge)
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), auto_decompress=False
        ) as session:
            yield Api(session, str(server.make_url("")).rstrip("/"), bridge, directory, app)
    finally:
        await server.close()


# --------------------------------------------------------------------------- calls


@dataclass
class LoadPhone(Phone):
    """An unregistered, auto-answering baresip that takes up to `max_calls` calls at once
    (baresip's own default is 4) and throws away what it hears."""

    max_calls: int = 8
    register: bool = False
    auto_answer: bool = True

    def _write_config(self) -> None:
        super()._write_config()
        cfg = self.dir / "config"
        text = cfg.read_text().replace(
            f"audio_player aufile,{self.inner_dir}/heard.wav", "audio_player aufile,/dev/null"
        )
        # A Phone's 20 RTP ports hold 10 calls at best, and baresip picks them at random,
        # so a busy phone fails to set up a call now and then: give it 64, in a region of
        # its own (30000 + the sandbox's port offset, above every sandbox RTP range).
        rtp = 30000 + self.sandbox.port_offset + 64 * (self.slot % MAX_PHONES)
        text = re.sub(r"rtp_ports .*", f"rtp_ports {rtp}-{rtp + 63}", text)
        # Headroom: a call just hung up may still hold its line for a moment.
        cfg.write_text(text + f"call_max_calls {2 * self.max_calls}\n")


@dataclass
class LiveCall:
    ext: str
    channel: str
    uniqueid: str
    phone: LoadPhone


class Calls:
    """Live calls on the real PBX, started and ended through a test's own AMI client."""

    def __init__(self, sandbox: Sandbox, ami: AmiClient, log: EventLog) -> None:
        self.sandbox = sandbox
        self.ami = ami
        self.log = log
        self.phones: list[LoadPhone] = []
        self.load: dict[int, int] = {}  # id(phone) -> calls it carries
        self.live: dict[str, LiveCall] = {}  # by uniqueid
        self.setup_retries = 0

    async def add_phones(self, n: int, calls_each: int = 8) -> None:
        for _ in range(n):
            phone = LoadPhone(self.sandbox, f"load{len(self.phones)}", max_calls=calls_each)
            await phone.start()
            self.phones.append(phone)
            self.load[id(phone)] = 0

    def _pick(self, avoid: set[int] = frozenset()) -> LoadPhone:  # type: ignore[assignment]
        free = [p for p in self.phones if self.load[id(p)] < p.max_calls]
        phones = [p for p in free if id(p) not in avoid] or free or self.phones
        phone = min(phones, key=lambda p: self.load[id(p)])
        if self.load[id(phone)] >= phone.max_calls:
            raise AssertionError("every LoadPhone is full: add phones")
        return phone

    async def start(
        self, ext: str, *, context: str = "public-sim", exten: str = "7778888",
        timeout: float = 20.0, attempts: int = 3,
    ) -> LiveCall:
        """Asterisk calls `ext`'s endpoint; returns once that channel is answered. (Under
        heavy load a baresip now and then lets an INVITE ring unanswered: that is test
        scaffolding, so the call is placed again, through another phone if it can.)"""
        avoid: set[int] = set()
        for attempt in range(attempts):
            try:
                return await self._start(ext, context, exten, timeout, avoid)
            except AssertionError:
                if attempt == attempts - 1:
                    raise
                self.setup_retries += 1
        raise AssertionError("unreachable")

    async def _start(self, ext: str, context: str, exten: str, timeout: float,
                     avoid: set[int]) -> LiveCall:
        phone = self._pick(avoid)
        avoid.add(id(phone))
        self.load[id(phone)] += 1
        resp = await self.ami.send_action(
            "Originate",
            {
                "Channel": f"PJSIP/{ext}/sip:{phone.user}@127.0.0.1:{phone.sip_port}",
                "Context": context,
                "Exten": exten,
                "Priority": "1",
                "Async": "true",
                "Timeout": str(int(timeout * 1000) - 2000),
            },
        )
        if resp.get("Response") != "Success":
            self.load[id(phone)] -= 1
            raise AssertionError(f"originate to {ext} refused: {resp}")
        ev = await self.log.wait_for("OriginateResponse", timeout=timeout,
                                     ActionID=resp["ActionID"])
        if ev.get("Response") != "Success":
            self.load[id(phone)] -= 1
            raise AssertionError(f"originate to {ext} failed: {ev}")
        call = LiveCall(ext, ev["Channel"], ev["Uniqueid"], phone)
        self.live[call.uniqueid] = call
        return call

    async def start_many(self, exts: list[str], parallel: int = 8) -> list[LiveCall]:
        sem = asyncio.Semaphore(parallel)

        async def one(ext: str) -> LiveCall:
            async with sem:
                return await self.start(ext)

        return list(await asyncio.gather(*(one(e) for e in exts)))

    async def hangup(self, call: LiveCall) -> None:
        self.live.pop(call.uniqueid, None)
        self.load[id(call.phone)] -= 1
        await self.ami.send_action("Hangup", {"Channel": call.channel})

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.sandbox.cli, "channel request hangup all")
        for phone in self.phones:
            await phone.stop()


async def connect_observer(sandbox: Sandbox) -> EventLog:
    """The test's own AMI client (`.client`), straight to Asterisk, recording every event;
    quick to come back after an Asterisk restart."""
    log = EventLog()
    client = AmiClient("127.0.0.1", sandbox.ami_port, HARNESS_USER, sandbox.secrets.harness,
                       backoff_cap=0.5,
                       ping_interval=5.0, ping_timeout=5.0, connect_timeout=2.0,
                       action_timeout=15.0)
    client.add_event_handler(log)
    await client.start()
    await client.wait_connected(10)
    log.client = client  # type: ignore[attr-defined]
    return log


# --------------------------------------------------------------------------- truth


@dataclass
class PbxChannel:
    uniqueid: str
    name: str
    linkedid: str
    state: str
    pbx_rec: str
    mixmonitors: int  # MixMonitors running on it, from `mixmonitor list`


_MIXMON_LINE = re.compile(r"^0x[0-9a-fA-F]+(?:\t|$)", re.M)  # no file yet: the id alone


async def pbx_truth(ami: AmiClient, *, mixmonitors: bool = True) -> dict[str, PbxChannel]:
    """Asterisk's own picture: CoreShowChannels, PBX_REC, and the MixMonitors running."""
    resp, items = await ami.send_list_action("CoreShowChannels", timeout=15)
    assert resp.get("Response") == "Success", resp
    out: dict[str, PbxChannel] = {}
    for ev in items:
        if ev.get("Event") != "CoreShowChannel":
            continue
        out[ev["Uniqueid"]] = PbxChannel(
            uniqueid=ev["Uniqueid"],
            name=ev["Channel"],
            linkedid=ev.get("Linkedid", ""),
            state=ev.get("ChannelStateDesc", ""),
            pbx_rec=ev.get("ChanVariable(PBX_REC)", ""),
            mixmonitors=0,
        )
    if mixmonitors:
        for ch in out.values():
            text = await ami.command(f"mixmonitor list {ch.name}")
            ch.mixmonitors = len(_MIXMON_LINE.findall(text))
    return out


def differences(bridge: Services, truth: dict[str, PbxChannel]) -> list[str]:
    """What the bridge shows that Asterisk does not have, and the other way round."""
    out = []
    mine = bridge.tracker.channels
    for uid in sorted(set(mine) - set(truth)):
        out.append(f"bridge has {mine[uid].name} ({uid}), Asterisk does not")
    for uid in sorted(set(truth) - set(mine)):
        out.append(f"Asterisk has {truth[uid].name} ({uid}), the bridge does not")
    for uid in sorted(set(mine) & set(truth)):
        t = truth[uid]
        if t.mixmonitors > 1:
            out.append(f"{t.name}: {t.mixmonitors} MixMonitors at once")
        recording = mine[uid].recording is not None
        if recording != (t.mixmonitors > 0):
            out.append(f"{t.name}: bridge says recording={recording}, Asterisk runs "
                       f"{t.mixmonitors} MixMonitor(s) (PBX_REC={t.pbx_rec!r})")
        if t.state == "Up" and mine[uid].state != 6:
            out.append(f"{t.name}: Up in Asterisk, state {mine[uid].state} in the bridge")
        if bool(t.pbx_rec) != (t.mixmonitors > 0):
            out.append(f"{t.name}: PBX_REC={t.pbx_rec!r} but {t.mixmonitors} MixMonitor(s)")
        if mine[uid].linkedid != t.linkedid:
            out.append(f"{t.name}: linkedid {mine[uid].linkedid} != {t.linkedid}")
    return out


async def wait_consistent(bridge: Services, ami: AmiClient, timeout: float = 10.0) -> None:
    """Until the bridge shows exactly what Asterisk has (events may lag a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        diff = differences(bridge, await pbx_truth(ami))
        if not diff:
            return
        if time.monotonic() > deadline:
            raise AssertionError("bridge != Asterisk:\n  " + "\n  ".join(diff))
        await asyncio.sleep(0.1)


class MixMonitorWatch:
    """Counts MixMonitors per channel from an observer's events: never two at once."""

    def __init__(self, log: EventLog) -> None:
        self.log = log

    def starts(self, channel: str | None = None) -> list[dict]:
        return [e for e in self.log.matching("MixMonitorStart")
                if channel is None or e.get("Channel") == channel]

    def max_concurrent(self) -> dict[str, int]:
        running: dict[str, int] = {}
        worst: dict[str, int] = {}
        for e in self.log.events:
            name = e.get("Event")
            uid = e.get("Uniqueid", "")
            if name == "MixMonitorStart":
                running[uid] = running.get(uid, 0) + 1
                worst[uid] = max(worst.get(uid, 0), running[uid])
            elif name == "MixMonitorStop":
                running[uid] = max(0, running.get(uid, 0) - 1)
            elif name == "Hangup":
                running.pop(uid, None)
        return worst


# --------------------------------------------------------------------------- AMI spies


class ActionSpy:
    """Wraps the bridge's `ami.send_action` / `send_list_action`: every action the bridge
    sends, with its headers, in order."""

    def __init__(self, ami: AmiClient) -> None:
        self.actions: list[tuple[str, dict[str, str]]] = []
        send, send_list = ami.send_action, ami.send_list_action

        async def send_action(action: str, headers: Any = None, **kw: Any):
            self.actions.append((action, {str(k): str(v) for k, v in (headers or {}).items()}))
            return await send(action, headers, **kw)

        async def send_list_action(action: str, headers: Any = None, **kw: Any):
            self.actions.append((action, {str(k): str(v) for k, v in (headers or {}).items()}))
            return await send_list(action, headers, **kw)

        ami.send_action = send_action  # type: ignore[method-assign]
        ami.send_list_action = send_list_action  # type: ignore[method-assign]

    def names(self) -> list[str]:
        return [name for name, _ in self.actions]

    def offending(self, needles: tuple[str, ...]) -> list[tuple[str, dict[str, str]]]:
        bad = []
        for name, headers in self.actions:
            text = name + "".join(k + v for k, v in headers.items())
            if has_control(text) or any(n.lower() in text.lower() for n in needles):
                bad.append((name, headers))
        return bad


class AmiProxy:
    """A TCP relay between the bridge and Asterisk (both real) that records every byte the
    bridge sends, can cut the link or refuse new connections, and can cut it at an exact
    point of the bridge's action stream (`cut_before`)."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = 0
        self.blocked = False
        self.connections = 0
        self.sent = bytearray()  # everything bridge -> Asterisk, over all connections
        #: When set, the link is cut just before these bytes would go to Asterisk (what
        #: precedes them in the stream still goes); then it clears itself.
        self.cut_before: bytes | None = None
        self.cut_done = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> AmiProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.blocked:
            writer.transport.abort()
            return
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        pair = {writer, up_w}
        self._writers |= pair
        tasks = [asyncio.create_task(self._up(reader, up_w, pair)),
                 asyncio.create_task(self._down(up_r, writer))]
        self._tasks.update(tasks)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.difference_update(tasks)
        for w in pair:
            self._writers.discard(w)
            w.transport.abort()

    async def _up(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, pair) -> None:
        buf = b""
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await src.read(65536):
                buf += data
                # Forward whole actions only, so a cut can fall exactly between two.
                while b"\r\n\r\n" in buf:
                    msg, buf = buf.split(b"\r\n\r\n", 1)
                    msg += b"\r\n\r\n"
                    if self.cut_before is not None and self.cut_before in msg:
                        self.cut_before = None
                        await dst.drain()
                        for w in pair:
                            w.transport.abort()
                        self.cut_done.set()
                        return
                    self.sent += msg
                    dst.write(msg)
                await dst.drain()

    async def _down(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()

    def cut(self) -> None:
        for w in list(self._writers):
            w.transport.abort()

    async def close(self) -> None:
        self.blocked = True
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


# --------------------------------------------------------------------------- figures


def summary(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "n": len(values),
        "median": statistics.median(values),
        "p95": values[min(len(values) - 1, int(0.95 * len(values)))],
        "worst": values[-1],
    }


def report(name: str, **figures: Any) -> None:
    """One line per figure on stdout (`pytest -s` shows it) and, if
    PBX_BRIDGE_RELIABILITY_REPORT names a file, appended there as JSON."""
    line = {"test": name, **figures}
    print(f"\nRELIABILITY {json.dumps(line, default=str)}")
    target = os.environ.get("PBX_BRIDGE_RELIABILITY_REPORT")
    if target:
        with open(target, "a") as f:
            f.write(json.dumps(line, default=str) + "\n")


async def until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> float:
    """Wait for predicate; return when it became true (monotonic)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what or 'condition'} not reached within {timeout} s")
        await asyncio.sleep(0.005)
    return time.monotonic()
