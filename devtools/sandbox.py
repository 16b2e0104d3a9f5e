"""A real Asterisk for development and tests, without Docker.

A Debian sid root holding Asterisk, its modules and sounds, baresip and sox is built
once with mmdebstrap and cached (a second build costs nothing). Asterisk then runs
chrooted in it with the project's own `asterisk-conf/`, unchanged except for the
`[directories]` of asterisk.conf, which point at a private instance folder inside the
root (etc, spool, run, log, db), so several instances never share state, and for the
secrets: the `CHANGE-ME` placeholders of asterisk-conf/ become secrets generated for the
instance (or given through the environment, as `make demo` does), kept in the instance
folder (mode 0600) for the tests, the phones and the demo.

Asterisk runs with umask 027, so its recordings are not world-readable.

Everything fails with one clear line (`SandboxError`) instead of hanging.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

ROOT_PACKAGES = (
    "asterisk",
    "asterisk-modules",
    "asterisk-core-sounds-en-gsm",
    "asterisk-moh-opsound-gsm",  # music on hold: OnHold and parked calls play it
    "baresip-core",
    "sox",
    "libsox-fmt-base",
)
# mmdebstrap's mirror is a dated copy: its Release files are "expired" on purpose.
MMDEBSTRAP_ARGS = (
    "--variant=apt",
    "--aptopt=Acquire::Check-Valid-Until \"false\"",
    "--aptopt=Acquire::Retries \"3\"",
)
SUITE = "sid"
CACHE_DIR = Path(os.environ.get("PBX_BRIDGE_SANDBOX_CACHE", "/var/cache/pbx-bridge"))
REPO_DIR = Path(__file__).resolve().parent.parent
DEFAULT_CONF_DIR = REPO_DIR / "asterisk-conf"
MIN_FREE_BYTES = 1_500_000_000
BUILD_TIMEOUT = 1200.0
INSTANCES = "var/pbx-sandbox"  # inside the root
# What asterisk-conf/ holds where a secret belongs; `pbx-bridge serve` refuses it.
SECRET_PLACEHOLDER = "CHANGE-ME"
# Files created by Asterisk (recordings, their folders) get no permission for "other".
ASTERISK_UMASK = 0o027
# The test harness's own AMI user: every class, for fault injection and checks the bridge
# may not do (`mixmonitor list`, Originate). Only in a sandbox's generated manager.conf.
HARNESS_AMI_USER = "pbx-bridge-harness"
# The ARI user of asterisk-conf/ari.conf. The bridge does not use ARI; the bench compares
# against it with this user and the instance's generated password (Sandbox.ari_url).
ARI_USER = "pbx-bridge"
# Where given secrets come from (the AMI one is the bridge's own setting name, so
# `make demo` exports it once for both); anything not given (ARI, the harness user) is
# generated per instance.
_SECRET_ENV = {
    "ami": "PBX_BRIDGE_AMI__SECRET",
    "sip": "PBX_BRIDGE_DEMO_SIP_PASSWORD",
}
# Secrets end up in config files: keep them to characters that need no quoting anywhere.
_SECRET_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


class SandboxError(RuntimeError):
    """Anything that stops the sandbox from working; the message is one clear line."""


@dataclass(frozen=True)
class SandboxSecrets:
    """The secrets of one sandbox instance (never logged, never in git)."""

    ami: str  # AMI user "pbx-bridge", the bridge's, with the shipped classes
    ari: str  # ARI user ARI_USER (the bench's comparison only)
    sip: str  # every demo extension's SIP password
    harness: str  # AMI user HARNESS_AMI_USER, tests only

    def __repr__(self) -> str:
        return "SandboxSecrets(***)"

    @classmethod
    def generate(cls, environ: dict[str, str] | None = None) -> SandboxSecrets:
        env = os.environ if environ is None else environ
        values = {}
        for key in ("ami", "ari", "sip", "harness"):
            given = env.get(_SECRET_ENV.get(key, ""), "")
            if given and (not set(given) <= _SECRET_CHARS or given == SECRET_PLACEHOLDER):
                raise SandboxError(
                    f"{_SECRET_ENV[key]} must be letters, digits, '-', '_' or '.' "
                    f"and not {SECRET_PLACEHOLDER}"
                )
            values[key] = given or secrets.token_urlsafe(24)
        return cls(**values)


def root_key(packages: tuple[str, ...] = ROOT_PACKAGES) -> str:
    """The cache key of a root: what mmdebstrap is asked for (devtools/containers.py
    caches its slimmer image base the same way)."""
    spec = " ".join((SUITE, *MMDEBSTRAP_ARGS, *packages))
    return hashlib.sha256(spec.encode()).hexdigest()[:12]


def default_root() -> Path:
    env = os.environ.get("PBX_BRIDGE_SANDBOX_ROOT")
    return Path(env) if env else CACHE_DIR / f"root-{root_key()}"


def _check_can_build(cache: Path) -> None:
    if os.geteuid() != 0:
        raise SandboxError("the Asterisk sandbox needs root (chroot, mmdebstrap): run as root")
    if shutil.which("mmdebstrap") is None:
        raise SandboxError("mmdebstrap not found: apt-get install mmdebstrap")
    cache.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(cache).free
    if free < MIN_FREE_BYTES:
        raise SandboxError(
            f"not enough disk for the Asterisk root in {cache}: "
            f"{free // 2**20} MiB free, {MIN_FREE_BYTES // 2**20} MiB needed"
        )


def ensure_root(
    root: Path | None = None,
    *,
    log: TextIO | None = None,
    packages: tuple[str, ...] = ROOT_PACKAGES,
) -> Path:
    """Return a ready root, building it once if needed (safe against parallel callers)."""
    root = root or default_root()
    marker = root / ".pbx-bridge-root-ok"
    if marker.exists():
        return root
    _check_can_build(root.parent)
    lock_path = root.parent / f".{root.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():  # another process built it while we waited
            return root
        tmp = root.parent / f"{root.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = [
            "mmdebstrap",
            *MMDEBSTRAP_ARGS,
            *([f"--include={','.join(packages)}"] if packages else []),
            SUITE,
            str(tmp),
        ]
        out = log or sys.stderr
        print(f"devtools sandbox: building a Debian root in {root} ...", file=out)
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise SandboxError(f"mmdebstrap did not finish in {BUILD_TIMEOUT:.0f} s") from exc
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise SandboxError(f"mmdebstrap failed ({proc.returncode}): {last}")
        (tmp / ".pbx-bridge-root-ok").write_text(" ".join(packages) + "\n")
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    return root


def stock_conf_dir(root: Path | None = None) -> Path:
    """Debian's sample configuration (package asterisk-config, which `asterisk` depends
    on) in the root: what an admin's PBX started from."""
    etc = ensure_root(root) / "etc" / "asterisk"
    if not (etc / "modules.conf").is_file():
        raise SandboxError(f"no stock configuration in {etc} (package asterisk-config)")
    return etc


def _port_busy(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _read_ami_banner(host: str, port: int, timeout: float) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            data = s.recv(128)
    except OSError:
        return None
    text = data.decode("utf-8", "replace")
    return text.strip() if text.startswith("Asterisk Call Manager") else None


def shift_ports(etc: Path, offset: int, *, foreign: bool = False) -> None:
    """Move the ports of the asterisk-conf/ copy in `etc` by `offset` (the sandbox's and
    the container tier's own ranges, so that several Asterisks never clash). `foreign`:
    another configuration (an existing PBX's), whose files and lines may be missing."""
    o = offset
    edits = {
        "manager.conf": [("port = 5038", f"port = {5038 + o}")],
        "http.conf": [("bindport = 8088", f"bindport = {8088 + o}")],
        "pjsip.conf": [("127.0.0.1:5060", f"127.0.0.1:{5060 + o}")],
        "rtp.conf": [("16000", str(16000 + o)), ("16999", str(16999 + o))],
        "extensions.conf": [("127.0.0.2:5080", f"127.0.0.2:{5080 + o}")],
    }
    for name, pairs in edits.items():
        if foreign and not (etc / name).is_file():
            continue
        text = (etc / name).read_text()
        for old, new in pairs:
            if old not in text and foreign:
                continue
            if old not in text:
                raise SandboxError(f"cannot shift ports: '{old}' not in {name}")
            text = text.replace(old, new)
        (etc / name).write_text(text)


@dataclass
class Sandbox:
    """One Asterisk instance in the cached root."""

    name: str = field(default_factory=lambda: os.environ.get("PBX_BRIDGE_SANDBOX_NAME", "dev"))
    root: Path = field(default_factory=default_root)
    conf_dir: Path = DEFAULT_CONF_DIR
    # Developers running several sandboxes at once (say, two checkouts) give each a port
    # offset; 0, the default and what CI uses, keeps asterisk-conf/ byte for byte.
    port_offset: int = field(
        default_factory=lambda: int(os.environ.get("PBX_BRIDGE_SANDBOX_PORT_OFFSET", "0"))
    )
    # The Asterisk we started, kept so that stop() reaps it (no zombies in long runs).
    # A configuration not made from asterisk-conf/ (Debian's stock /etc/asterisk, as "an
    # existing PBX"): ports are shifted and secrets filled where their lines are, and a
    # file without them is left as it is instead of refused.
    foreign: bool = False
    _proc: subprocess.Popen[bytes] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _secrets: SandboxSecrets | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def ami_port(self) -> int:
        return 5038 + self.port_offset

    @property
    def http_port(self) -> int:
        return 8088 + self.port_offset

    @property
    def ari_url(self) -> str:
        """ARI's base URL (user ARI_USER, password `secrets.ari`)."""
        return f"http://127.0.0.1:{self.http_port}/ari"

    @property
    def sip_port(self) -> int:
        return 5060 + self.port_offset

    @property
    def carrier_port(self) -> int:
        """Where the "pstn" carrier stand-in listens (on 127.0.0.2)."""
        return 5080 + self.port_offset

    # ---- paths
    @property
    def inner_dir(self) -> str:
        """The instance folder as Asterisk sees it (inside the chroot)."""
        return f"/{INSTANCES}/{self.name}"

    @property
    def instance_dir(self) -> Path:
        """The instance folder as the host sees it."""
        return self.root / INSTANCES / self.name

    @property
    def monitor_dir(self) -> Path:
        """Where MixMonitor's relative file names land, seen from the host."""
        return self.instance_dir / "spool" / "monitor"

    @property
    def secrets_file(self) -> Path:
        return self.instance_dir / "secrets.json"

    @property
    def secrets(self) -> SandboxSecrets:
        """The instance's secrets, as written by prepare() (read back by another process,
        e.g. `python -m devtools phone` next to `make demo`)."""
        if self._secrets is None:
            try:
                data = json.loads(self.secrets_file.read_text())
                self._secrets = SandboxSecrets(**data)
            except (OSError, ValueError, TypeError) as exc:
                raise SandboxError(
                    f"sandbox '{self.name}' has no secrets yet: start it first"
                ) from exc
        return self._secrets

    @property
    def log_file(self) -> Path:
        return self.instance_dir / "asterisk.out"

    @property
    def pid_file(self) -> Path:
        return self.instance_dir / "asterisk.pid"

    def host_path(self, inner: str) -> Path:
        """Map a path Asterisk reports (inside the chroot) to the host."""
        return self.root / inner.lstrip("/")

    # ---- lifecycle
    def prepare(self) -> None:
        """Fresh instance folder: the project's config plus a private asterisk.conf."""
        ensure_root(self.root)
        if self.running():
            raise SandboxError(f"sandbox '{self.name}' is running: stop it first")
        shutil.rmtree(self.instance_dir, ignore_errors=True)
        keys = SandboxSecrets.generate()
        # Asterisk looks up its own host name to pick an address for SDP; with no DNS
        # here that costs a failed lookup (and two error lines) on every call.
        (self.root / "etc" / "hosts").write_text(
            f"127.0.0.1 localhost {socket.gethostname()}\n::1 localhost ip6-localhost\n"
        )
        etc = self.instance_dir / "etc"
        # Like Asterisk's own files (ASTERISK_UMASK): the recordings' folders, the
        # secrets in etc/, nothing for "other".
        old_umask = os.umask(ASTERISK_UMASK)
        try:
            etc.mkdir(parents=True)
            for sub in ("spool/monitor", "run", "log", "db", "cache", "keys"):
                (self.instance_dir / sub).mkdir(parents=True, exist_ok=True)
        finally:
            os.umask(old_umask)
        for folder in (self.instance_dir, self.instance_dir / "spool"):
            folder.chmod(0o750)
        if not (self.conf_dir / "modules.conf").exists():
            raise SandboxError(f"no Asterisk configuration in {self.conf_dir}")
        for src in self.conf_dir.iterdir():
            if src.is_file() and src.name != "asterisk.conf":
                shutil.copy2(src, etc / src.name)
            elif src.is_dir():  # manager.d/ of a stock configuration, say
                shutil.copytree(src, etc / src.name)
        if self.port_offset:
            self._shift_ports(etc)
        self._write_secrets(etc, keys)
        base = (self.conf_dir / "asterisk.conf").read_text()
        options = base.split("[options]", 1)[1] if "[options]" in base else ""
        d = self.inner_dir
        (etc / "asterisk.conf").write_text(
            "; written by devtools.sandbox from asterisk-conf/asterisk.conf\n"
            "[directories]\n"
            f"astcachedir => {d}/cache\n"
            f"astetcdir => {d}/etc\n"
            "astmoddir => /usr/lib/x86_64-linux-gnu/asterisk/modules\n"
            "astvarlibdir => /var/lib/asterisk\n"
            f"astdbdir => {d}/db\n"
            f"astkeydir => {d}/keys\n"
            "astdatadir => /usr/share/asterisk\n"
            "astagidir => /usr/share/asterisk/agi-bin\n"
            f"astspooldir => {d}/spool\n"
            f"astrundir => {d}/run\n"
            f"astlogdir => {d}/log\n"
            "astsbindir => /usr/sbin\n\n"
            f"[options]{options}"
        )

    def _shift_ports(self, etc: Path) -> None:
        shift_ports(etc, self.port_offset, foreign=self.foreign)

    def _write_secrets(self, etc: Path, keys: SandboxSecrets) -> None:
        edits = {
            "manager.conf": ("secret", keys.ami),
            "ari.conf": ("password", keys.ari),
            "pjsip.conf": ("password", keys.sip),
        }
        for name, (option, value) in edits.items():
            path = etc / name
            text = path.read_text()
            line = f"{option} = {SECRET_PLACEHOLDER}"
            if line not in text and not self.foreign:
                raise SandboxError(f"no '{line}' in {name}: cannot set the sandbox's secret")
            text = text.replace(line, f"{option} = {value}")
            if name == "manager.conf":
                text += (
                    "\n; written by devtools.sandbox: the test harness's own user (never\n"
                    "; in asterisk-conf/), for checks and faults the bridge may not cause.\n"
                    f"[{HARNESS_AMI_USER}]\nsecret = {keys.harness}\n"
                    "deny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\n"
                    "read = all\nwrite = all\n"
                )
            path.write_text(text)
            path.chmod(0o600)
        fd = os.open(self.secrets_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(
                {"ami": keys.ami, "ari": keys.ari, "sip": keys.sip, "harness": keys.harness},
                out,
            )
        self._secrets = keys

    def _asterisk(self, *args: str) -> list[str]:
        return [
            "chroot",
            str(self.root),
            "/usr/sbin/asterisk",
            "-C",
            f"{self.inner_dir}/etc/asterisk.conf",
            *args,
        ]

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        # A stale pid file could name a recycled pid: check it is our Asterisk.
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if b"asterisk" in cmdline and self.inner_dir.encode() in cmdline else None

    def running(self) -> bool:
        return self.pid() is not None

    def busy_ports(self) -> list[int]:
        """This instance's TCP ports (AMI, HTTP) that something else listens on."""
        return [port for port in (self.ami_port, self.http_port) if _port_busy(port)]

    def start(self, timeout: float = 60.0, *, fresh: bool = True) -> None:
        """Start Asterisk and return once it is fully booted and AMI answers."""
        if self.running():
            raise SandboxError(f"sandbox '{self.name}' already running (pid {self.pid()})")
        busy = self.busy_ports()
        if busy:
            raise SandboxError(
                f"port {busy[0]} on 127.0.0.1 is in use: another Asterisk running? "
                "(python -m devtools sandbox stop)"
            )
        if fresh or not (self.instance_dir / "etc" / "asterisk.conf").exists():
            self.prepare()
        log = open(self.log_file, "ab")
        proc = subprocess.Popen(
            self._asterisk("-f", "-n", "-q"),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the CLI that started it; no stray signals
            umask=ASTERISK_UMASK,  # recordings 0640 in 0750 folders, not world-readable
        )
        log.close()
        self._proc = proc
        self.pid_file.write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + timeout
        try:
            self._wait_booted(proc, deadline)
        except BaseException:
            self._kill(proc.pid)
            raise

    def _wait_booted(self, proc: subprocess.Popen[bytes], deadline: float) -> None:
        while True:
            if proc.poll() is not None:
                raise SandboxError(
                    f"Asterisk exited with {proc.returncode} while starting: {self._log_tail()}"
                )
            if time.monotonic() > deadline:
                raise SandboxError(f"Asterisk did not boot in time: {self._log_tail()}")
            try:
                left = max(1.0, deadline - time.monotonic())
                out = self.cli("core waitfullybooted", timeout=left)
            except SandboxError:
                out = ""
            if "fully booted" in out.lower() and _read_ami_banner(
                "127.0.0.1", self.ami_port, 2.0
            ):
                return
            time.sleep(0.2)

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        errors = [ln for ln in lines if "ERROR" in ln or "WARNING" in ln]
        return " | ".join((errors or lines)[-3:]) or "(empty log)"

    def cli(self, command: str, timeout: float = 15.0) -> str:
        """Run an Asterisk CLI command in the instance and return its output."""
        try:
            proc = subprocess.run(
                self._asterisk("-rx", command),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SandboxError(f"Asterisk CLI '{command}' timed out after {timeout:.0f} s") from exc
        if proc.returncode != 0:
            msg = (proc.stderr or proc.stdout).strip().splitlines()
            raise SandboxError(f"Asterisk CLI '{command}' failed: {msg[-1] if msg else '?'}")
        return proc.stdout

    def stop(self, timeout: float = 15.0) -> None:
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(SandboxError):
            self.cli("core stop now", timeout=timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.1)
        if self.pid() is not None:
            self._kill(pid)
        if self._proc is not None and self._proc.pid == pid:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL, as a crash: no shutdown, no BYE to any peer; the process is reaped.
        start(fresh=False) brings the same instance back."""
        pid = self.pid()
        if pid is None:
            raise SandboxError(f"sandbox '{self.name}' is not running")
        self._kill(pid)
        if self._proc is not None and self._proc.pid == pid:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
        self.pid_file.unlink(missing_ok=True)

    def _kill(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, 0)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    # Fault injection helpers for tests: freeze and thaw the PBX.
    def signal(self, sig: int) -> None:
        pid = self.pid()
        if pid is None:
            raise SandboxError(f"sandbox '{self.name}' is not running")
        os.kill(pid, sig)


# --------------------------------------------------------------------------- CLI
def _cmd(args: argparse.Namespace) -> int:
    sb = Sandbox(name=args.name)
    try:
        if args.action == "build":
            t0 = time.monotonic()
            root = ensure_root(sb.root)
            print(f"root ready: {root} ({time.monotonic() - t0:.1f} s)")
        elif args.action == "start":
            t0 = time.monotonic()
            sb.start(timeout=args.timeout)
            print(
                f"Asterisk running (pid {sb.pid()}, {time.monotonic() - t0:.1f} s): "
                f"AMI 127.0.0.1:{sb.ami_port}, ARI {sb.ari_url}, "
                f"SIP udp 127.0.0.1:{sb.sip_port}, recordings in {sb.monitor_dir}"
            )
        elif args.action == "stop":
            sb.stop()
            print("Asterisk stopped")
        elif args.action == "status":
            pid = sb.pid()
            print(f"running (pid {pid})" if pid else "stopped")
            return 0 if pid else 3
        elif args.action == "cli":
            if not args.rest:
                raise SandboxError("usage: python -m devtools sandbox cli 'core show channels'")
            sys.stdout.write(sb.cli(" ".join(args.rest)))
        elif args.action == "path":
            print(sb.instance_dir)
    except SandboxError as exc:
        print(f"devtools sandbox: {exc}", file=sys.stderr)
        return 1
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "sandbox",
        help="a local Asterisk (Debian sid root, no Docker) for development and tests",
        description="Build, start, stop and talk to the development Asterisk.",
    )
    p.add_argument(
        "action",
        choices=("build", "start", "stop", "status", "cli", "path"),
        help="build the root | start | stop | status | run a CLI command | print the folder",
    )
    p.add_argument("rest", nargs="*", help="the CLI command for `cli`")
    p.add_argument("--name", default="dev", help="instance name (default: dev)")
    p.add_argument("--timeout", type=float, default=60.0, help="start timeout in seconds")
    p.set_defaults(func=_cmd)
