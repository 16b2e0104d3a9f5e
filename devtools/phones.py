"""Real SIP phones for tests, benchmarks and the demo: baresip in the sandbox root.

Each `Phone` is one baresip process with one account, driven over baresip's `ctrl_tcp`
interface (netstring-framed JSON). Its microphone is a sine wave or a WAV file, and what
it hears is written to a WAV file, so a test can prove audio flowed both ways.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.sandbox import Sandbox
from pbx_bridge.directory.models import is_extension_number

PHONES_DIR = "var/pbx-sandbox/phones"  # inside the root
MAX_PHONES = 40  # at once per sandbox: their ports stay inside the sandbox's port range
_ports = itertools.count(0)


_MENU_TONES = ("ring", "callwaiting", "ringback")  # the ones that play while a call rings
# A phone's SIP user names its folder: no "/", never "." or ".." (tests also use names
# such as "orig" or "load3" for unregistered peers; the CLI takes extension numbers only).
_SIP_USER = re.compile(r"[A-Za-z0-9*+_-][A-Za-z0-9*+_.-]{0,63}")
_LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


class PhoneError(RuntimeError):
    pass


@dataclass
class PhoneEvent:
    type: str
    data: dict[str, Any]


@dataclass
class Phone:
    """One SIP phone. `user` is the SIP user (the extension number, or a public number
    for the carrier stand-in); `register=False` for a trunk-like peer."""

    sandbox: Sandbox
    user: str
    password: str | None = None  # None: the sandbox instance's SIP password
    register: bool = True
    listen_ip: str = "127.0.0.1"
    tone_hz: int = 440
    audio_file: str | None = None  # inside-root path of a WAV to play as the microphone
    auto_answer: bool = False
    fixed_sip_port: int | None = None  # e.g. 5080 for the carrier stand-in
    slot: int = field(default_factory=lambda: next(_ports))
    events: asyncio.Queue[PhoneEvent] = field(default_factory=asyncio.Queue)
    history: list[PhoneEvent] = field(default_factory=list)

    @classmethod
    def carrier(cls, sandbox: Sandbox, number: str, **kw: Any) -> Phone:
        """The public network calling in: its calls reach the PBX as the "pstn" trunk
        (matched by its address 127.0.0.2) with `number` as caller id. (baresip 1.1 only
        accepts requests addressed to its own contact user, so calls *to* public numbers
        use the numbers the PBX answers itself, such as 7778888.)"""
        return cls(
            sandbox, number, register=False, listen_ip="127.0.0.2",
            fixed_sip_port=sandbox.carrier_port, **kw,
        )

    def __post_init__(self) -> None:
        if not _SIP_USER.fullmatch(self.user):
            raise PhoneError(f"not a SIP user name for a phone: {self.user!r}")
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tokens = itertools.count(1)
        self._read_task: asyncio.Task[None] | None = None
        self.name = f"{self.user.replace('*', '_')}-{os.getpid()}-{self.slot}"

    # ---- paths and ports (distinct per slot, so many phones can run at once)
    @property
    def sip_port(self) -> int:
        if self.fixed_sip_port:
            return self.fixed_sip_port
        return 5100 + self.sandbox.port_offset + 2 * (self.slot % MAX_PHONES)

    @property
    def ctrl_port(self) -> int:
        return 4500 + self.sandbox.port_offset + (self.slot % MAX_PHONES)

    @property
    def inner_dir(self) -> str:
        # Per sandbox instance: kill_stale() of one test run never touches another's.
        return f"/{PHONES_DIR}/{self.sandbox.name}/{self.name}"

    @property
    def dir(self) -> Path:
        return self.sandbox.root / PHONES_DIR / self.sandbox.name / self.name

    @property
    def heard_file(self) -> Path:
        """What the phone heard (WAV, 8 kHz 16-bit), on the host."""
        return self.dir / "heard.wav"

    @property
    def pbx(self) -> str:
        return f"127.0.0.1:{self.sandbox.sip_port}"

    @property
    def uri(self) -> str:
        return f"sip:{self.user}@{self.pbx}"

    def _checked_dir(self) -> Path:
        """The phone's folder, which must be a direct child of its sandbox's phones folder
        (it is deleted and rewritten: a name that led elsewhere would delete elsewhere)."""
        base = (self.sandbox.root / PHONES_DIR / self.sandbox.name).resolve()
        folder = self.dir.resolve()
        if folder.parent != base or folder.name != self.name:
            raise PhoneError(f"phone folder {self.dir} is outside {base}")
        return folder

    def _write_config(self) -> None:
        folder = self._checked_dir()
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        password = self.password if self.password is not None else self.sandbox.secrets.sip
        rtp = 20000 + self.sandbox.port_offset + 20 * (self.slot % MAX_PHONES)
        source = f"aufile,{self.audio_file}" if self.audio_file else f"ausine,{self.tone_hz}"
        (self.dir / "config").write_text(
            "\n".join(
                [
                    "poll_method epoll",
                    f"sip_listen {self.listen_ip}:{self.sip_port}",
                    "sip_transports udp",
                    f"audio_player aufile,{self.inner_dir}/heard.wav",
                    f"audio_source {source}",
                    "audio_alert aufile,/dev/null",
                    # No ring or ringback tones: each is a player on its own aufile
                    # thread, and stopping one while the call's audio starts hung
                    # baresip 1.1's main loop (accept / CALL_ESTABLISHED never came) in
                    # about one of two ten-scenario capture runs. A missing ring file is
                    # only logged. (Not the hangup tone: its failure fails `hangup`.)
                    "ringback_disabled yes",
                    *(f"{tone}_aufile none" for tone in _MENU_TONES),
                    "ausrc_srate 48000",  # ausine needs 48 kHz (resampled to the codec)
                    "auplay_srate 8000",
                    f"rtp_ports {rtp}-{rtp + 19}",
                    "module_path /usr/lib/baresip/modules",
                    "module g711.so",
                    "module ausine.so",
                    "module aufile.so",
                    "module_app account.so",
                    "module_app menu.so",
                    "module_app ctrl_tcp.so",
                    f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}",
                    "",
                ]
            )
        )
        params = [f"auth_pass={password}"]
        params.append("regint=300" if self.register else "regint=0")
        params.append("answermode=auto" if self.auto_answer else "answermode=manual")
        (self.dir / "accounts").write_text(f"<{self.uri}>;{';'.join(params)}\n")

    # ---- lifecycle
    async def start(self, timeout: float = 10.0) -> Phone:
        try:
            return await self._start(timeout)
        except BaseException:
            await self.stop()
            raise

    def _ports_free(self) -> bool:
        ports = [(self.ctrl_port, socket.SOCK_STREAM)]
        if not self.fixed_sip_port:
            ports.append((self.sip_port, socket.SOCK_DGRAM))
        for port, kind in ports:
            with socket.socket(socket.AF_INET, kind) as s:
                try:
                    s.bind((self.listen_ip if kind == socket.SOCK_DGRAM else "127.0.0.1", port))
                except OSError:
                    return False
        return True

    async def _start(self, timeout: float) -> Phone:
        # Never talk to somebody else's baresip: move to a free slot if ours is taken
        # (a carrier's SIP port is fixed, its control port is not).
        for _ in range(MAX_PHONES):
            if self._ports_free():
                break
            self.slot = next(_ports)
            self.name = f"{self.user.replace('*', '_')}-{os.getpid()}-{self.slot}"
        else:
            raise PhoneError("no free ports for another phone: stale baresip processes?")
        self._write_config()
        log = open(self.dir / "baresip.log", "wb")  # noqa: ASYNC230 - handed to the child
        self._proc = await asyncio.create_subprocess_exec(
            "chroot",
            str(self.sandbox.root),
            "baresip",
            "-f",
            self.inner_dir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        async with asyncio.timeout(timeout):
            while True:
                try:
                    self._reader, self._writer = await asyncio.open_connection(
                        "127.0.0.1", self.ctrl_port
                    )
                    break
                except OSError:
                    if self._proc.returncode is not None:
                        msg = f"baresip for {self.user} exited: {self.log_tail()}"
                        raise PhoneError(msg) from None
                    await asyncio.sleep(0.05)
            # The port was free a moment ago, but another process may have taken it
            # since: only talk to the baresip we started.
            if not listens_on(self._proc.pid, self.ctrl_port):
                raise PhoneError(
                    f"control port 127.0.0.1:{self.ctrl_port} is answered by another "
                    f"process, not {self.user}'s baresip"
                )
            self._read_task = asyncio.create_task(self._read_loop())
            if self.register:
                await self._wait_registered()
        return self

    async def _wait_registered(self) -> None:
        # REGISTER_OK may fire before our control link is up, so poll the state instead.
        while "200 OK" not in (info := await self.command("reginfo")) and "OK" not in info:
            await asyncio.sleep(0.05)

    def log_tail(self) -> str:
        try:
            text = (self.dir / "baresip.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-3:])

    @staticmethod
    def kill_stale(sandbox: Sandbox) -> int:
        """Kill baresip processes left in this sandbox instance by crashed runs."""
        killed = 0
        marker = f"{PHONES_DIR}/{sandbox.name}/".encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
                root = os.readlink(proc / "root")
            except OSError:
                continue
            if b"baresip" in cmdline and marker in cmdline and root == str(sandbox.root):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(proc.name), signal.SIGKILL)
                    killed += 1
        Phone._prune(sandbox)
        return killed

    @staticmethod
    def _prune(sandbox: Sandbox) -> None:
        """Delete the folders (config, log, heard.wav) of phones whose test process is
        gone: each run leaves its own, and a development root grew by 150 MB in a day.
        A live process's folders stay, so a failing run's baresip logs can be read."""
        base = sandbox.root / PHONES_DIR / sandbox.name
        if not base.is_dir():
            return
        for folder in base.iterdir():
            pid = folder.name.rsplit("-", 2)[-2] if folder.name.count("-") >= 2 else ""
            if pid.isascii() and pid.isdigit() and not Path(f"/proc/{pid}").exists():
                shutil.rmtree(folder, ignore_errors=True)

    async def stop(self) -> None:
        if self._read_task:
            self._read_task.cancel()
        if self._writer:
            self._writer.close()
        if self._proc and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                async with asyncio.timeout(3):
                    await self._proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._proc.pid, signal.SIGKILL)
                await self._proc.wait()

    async def __aenter__(self) -> Phone:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- control protocol: netstrings of JSON
    async def _read_loop(self) -> None:
        assert self._reader is not None
        try:
            while True:
                length = await self._reader.readuntil(b":")
                body = await self._reader.readexactly(int(length[:-1]))
                await self._reader.readexactly(1)  # the trailing ","
                msg = json.loads(body)
                if msg.get("response"):
                    fut = self._pending.pop(msg.get("token", ""), None)
                    if fut and not fut.done():
                        fut.set_result(msg)
                elif msg.get("event"):
                    ev = PhoneEvent(msg.get("type", ""), msg)
                    self.history.append(ev)
                    self.events.put_nowait(ev)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass

    async def command(self, command: str, params: str = "", timeout: float = 15.0) -> str:
        if self._writer is None:
            raise PhoneError("phone not started")
        token = str(next(self._tokens))
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[token] = fut
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self._writer.write(str(len(body)).encode() + b":" + body + b",")
        try:
            async with asyncio.timeout(timeout):
                msg = await fut
        finally:
            self._pending.pop(token, None)
        if not msg.get("ok"):
            raise PhoneError(f"{self.user}: {command} {params!r} failed: {msg.get('data')}")
        return str(msg.get("data", ""))

    async def wait_event(self, *types: str, timeout: float = 20.0) -> PhoneEvent:
        """Wait for the next event of one of `types` (earlier other events are skipped)."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    ev = await self.events.get()
                    if ev.type in types:
                        return ev
        except TimeoutError:
            seen = [e.type for e in self.history[-8:]]
            raise PhoneError(
                f"{self.user}: no {'/'.join(types)} within {timeout} s (last events: {seen})"
            ) from None

    # ---- phone actions
    async def dial(self, number: str) -> None:
        await self.command("dial", f"sip:{number}@{self.pbx}")

    async def accept(self) -> None:
        await self.command("accept")

    async def hangup(self) -> None:
        try:
            await self.command("hangup")
        except PhoneError as exc:
            # baresip 1.1's menu keeps its own "current call", and under load it
            # sometimes has none for a call that is still ringing out (seen in CI:
            # no CALL_CLOSED, yet "no active call"); hangupall ends it regardless.
            if "no active call" not in str(exc):
                raise
            await self.command("hangupall", "dir=all")

    async def send_dtmf(self, digits: Iterable[str], gap: float = 0.25) -> None:
        for d in digits:
            await self.command("sndcode", d)
            await asyncio.sleep(gap)

    async def transfer(self, number: str) -> None:
        await self.command("transfer", f"sip:{number}@{self.pbx}")


def listens_on(pid: int, port: int, host: str = "127.0.0.1") -> bool:
    """Does process `pid` hold the socket listening on TCP host:port? (Linux /proc.)"""
    address = int.from_bytes(socket.inet_aton(host), "little")
    local = f"{address:08X}:{port:04X}"
    inodes = set()
    try:
        with open("/proc/net/tcp") as table:
            next(table)
            for row in table:
                cols = row.split()
                if cols[1] == local and cols[3] == _LISTEN:
                    inodes.add(f"socket:[{cols[9]}]")
    except OSError:
        return False
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
    return False


# --------------------------------------------------------------------------- CLI
def _extension(value: str) -> str:
    if not is_extension_number(value):
        raise argparse.ArgumentTypeError(
            "must be digits (up to 15) or <digits>*<digits> (up to 8 each), e.g. 0003*210"
        )
    return value


def _cmd(args: argparse.Namespace) -> int:

    async def run() -> int:
        sb = Sandbox(name=args.sandbox)
        if not sb.running():
            print(f"devtools phone: sandbox '{sb.name}' is not running", file=sys.stderr)
            return 1
        answer = not args.dial
        phone = (
            Phone.carrier(sb, args.ext, auto_answer=answer)
            if args.carrier
            else Phone(sb, args.ext, auto_answer=answer)
        )
        async with phone:
            if args.dial:
                await phone.dial(args.dial)
                await phone.wait_event("CALL_ESTABLISHED", timeout=30)
                print(f"{args.ext} is in a call with {args.dial} for {args.seconds:.0f} s "
                      f"(Ctrl-C hangs up)", flush=True)
            else:
                print(f"{args.ext} registered; answering calls for {args.seconds:.0f} s",
                      flush=True)
            try:
                await asyncio.sleep(args.seconds)
            finally:
                with contextlib.suppress(PhoneError, OSError):
                    await phone.hangup()
        return 0

    return asyncio.run(run())


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "phone",
        help="a real SIP phone (baresip) on the sandbox PBX, for demos",
        description="Start a baresip phone registered as an extension of the sandbox PBX "
        "and optionally place a call that stays up for a while.",
    )
    p.add_argument("--ext", default="0003*210", type=_extension,
                   help="extension (SIP user) to register as")
    p.add_argument("--dial", help="number to call, e.g. 7778888 (a public test number)")
    p.add_argument("--seconds", type=float, default=300.0, help="how long to stay up")
    p.add_argument("--carrier", action="store_true",
                   help="act as the public network (caller id = --ext) instead of a phone")
    p.add_argument("--sandbox", default="dev", help="sandbox instance name (default: dev)")
    p.set_defaults(func=_cmd)
