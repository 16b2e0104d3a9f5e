"""The images and the compose project of docker/, built and run with podman (rootful).

No image registry is reachable where the tests run, so the Dockerfiles' public base
(`debian:sid-slim`, what users get) is replaced, through their BASE build argument, by a
local Debian sid image: a plain mmdebstrap root (devtools.sandbox.ensure_root, cached in
the same folder by its package list) imported with `podman import`. Each image is tagged
by a hash of its Dockerfile, its inputs and the base, so an unchanged image is never
rebuilt. Package installs inside the builds reach Debian's and PyPI's registries.

`ComposeProject` runs docker/compose.yaml with podman-compose under its own project name
and tears everything (containers, volumes) down by that name.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devtools.sandbox import CACHE_DIR, REPO_DIR, SandboxError, ensure_root, root_key

# The base root: nothing but Debian's apt variant, like the debian:sid-slim image.
BASE_PACKAGES: tuple[str, ...] = ()
BASE_REPO = "localhost/pbx-bridge-base"
COMPOSE_FILE = REPO_DIR / "docker" / "compose.yaml"
BUILD_TIMEOUT = 1200.0
# pip inside the bridge build must trust what this host trusts (a TLS-inspecting proxy
# here); handed over as the Dockerfile's optional build secret, never stored in the image.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass(frozen=True)
class ImageSpec:
    repo: str  # image name without the tag
    dockerfile: str  # relative to the repository
    inputs: tuple[str, ...]  # files and folders the build copies in


IMAGES = {
    "asterisk": ImageSpec(
        "localhost/pbx-bridge-asterisk",
        "docker/asterisk.Dockerfile",
        ("docker/asterisk-entrypoint.sh",),
    ),
    "bridge": ImageSpec(
        "localhost/pbx-bridge",
        "docker/bridge.Dockerfile",
        ("docker/bridge-entrypoint.sh", "pyproject.toml", "README.md", "pbx_bridge"),
    ),
}


def podman_missing() -> str | None:
    """Why the container tier cannot run here, or None."""
    if shutil.which("podman") is None:
        return "podman is not installed (make bootstrap installs it)"
    if os.geteuid() != 0:
        return "the container tier runs podman rootful: run as root"
    if not _venv_compose().exists():
        return "podman-compose is not in the virtual environment (pip install -e '.[dev]')"
    return None


def _venv_compose() -> Path:
    """The project's own podman-compose (pyproject.toml dev extra): Debian's 1.0 knows
    neither profiles nor host networking without a second network."""
    return Path(sys.executable).parent / "podman-compose"


def _podman(*args: str, timeout: float = 120.0, stdin: bytes | None = None) -> str:
    proc = subprocess.run(
        ["podman", *args], input=stdin, capture_output=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise SandboxError(f"podman {args[0]} failed ({proc.returncode}): {' | '.join(tail)}")
    return proc.stdout.decode(errors="replace")


def image_exists(ref: str) -> bool:
    return subprocess.run(["podman", "image", "exists", ref], check=False).returncode == 0


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """One builder at a time on this machine (parallel test runs share the images)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_base() -> str:
    """The local Debian sid base image, imported once from its cached root."""
    key = root_key(BASE_PACKAGES)
    ref = f"{BASE_REPO}:{key}"
    with _locked("base-image"):
        if not image_exists(ref):
            root = ensure_root(CACHE_DIR / f"base-{key}", packages=BASE_PACKAGES)
            tar = subprocess.run(
                ["tar", "-C", str(root), "--exclude=./.pbx-bridge-root-ok", "-c", "."],
                capture_output=True, check=True, timeout=BUILD_TIMEOUT,
            )
            _podman("import", "-", ref, stdin=tar.stdout, timeout=BUILD_TIMEOUT)
    return ref


def _hash_inputs(spec: ImageSpec, base: str) -> str:
    digest = hashlib.sha256(base.encode())
    for rel in (spec.dockerfile, *spec.inputs):
        path = REPO_DIR / rel
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in files:
            if not file.is_file() or "__pycache__" in file.parts:
                continue
            digest.update(str(file.relative_to(REPO_DIR)).encode() + b"\0")
            digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def ensure_image(name: str, *, log: Path | None = None) -> str:
    """Build image `name` of IMAGES unless an image of the same inputs exists; its ref."""
    spec = IMAGES[name]
    base = ensure_base()
    ref = f"{spec.repo}:{_hash_inputs(spec, base)}"
    with _locked(f"image-{name}"):
        if image_exists(ref):
            return ref
        cmd = [
            "podman", "build", "--format", "docker",  # docker: keeps the HEALTHCHECK
            "--build-arg", f"BASE={base}", "-f", spec.dockerfile, "-t", ref,
        ]
        if HOST_CA_BUNDLE.exists():
            cmd += ["--secret", f"id=ca-bundle,src={HOST_CA_BUNDLE}"]
        with open(log or os.devnull, "ab") as out:
            proc = subprocess.run(
                [*cmd, "."], cwd=REPO_DIR, stdout=out, stderr=subprocess.STDOUT,
                timeout=BUILD_TIMEOUT, check=False,
            )
        if proc.returncode != 0:
            raise SandboxError(f"building {spec.dockerfile} failed (log: {log})")
    return ref


@dataclass
class ComposeProject:
    """docker/compose.yaml under project name `name`, with `env` for its variables."""

    name: str
    env: Mapping[str, str]
    profiles: tuple[str, ...] = ()
    log: Path | None = None
    _environ: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
        self._environ = {**base, **self.env}

    def compose(self, *args: str, timeout: float = 300.0) -> str:
        exe = str(_venv_compose())
        profiles = [arg for p in self.profiles for arg in ("--profile", p)]
        cmd = [exe, "-p", self.name, "-f", str(COMPOSE_FILE), *profiles, *args]
        proc = subprocess.run(
            cmd, env=self._environ, capture_output=True, timeout=timeout, check=False
        )
        if self.log:
            with open(self.log, "ab") as out:
                out.write(b"$ podman-compose " + " ".join(args).encode() + b"\n")
                out.write(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
            raise SandboxError(f"podman-compose {args[0]} failed: {' | '.join(tail)}")
        return proc.stdout.decode(errors="replace")

    def container(self, service: str) -> str:
        """The container of `service` (podman-compose names it <project>_<service>_1)."""
        return f"{self.name}_{service}_1"

    def exec(self, service: str, *cmd: str, timeout: float = 60.0) -> str:
        return _podman("exec", self.container(service), *cmd, timeout=timeout)

    def wait(self, service: str, timeout: float = 120.0) -> int:
        """Wait for a one-shot service's container to exit; its exit code."""
        return int(_podman("wait", self.container(service), timeout=timeout).strip())

    def healthcheck(self, service: str) -> str:
        """Run the image's HEALTHCHECK in the service's container now (podman runs it on
        a systemd timer otherwise); "healthy", or what the check said."""
        proc = subprocess.run(
            ["podman", "healthcheck", "run", self.container(service)],
            capture_output=True, timeout=60, check=False,
        )
        out = (proc.stdout + proc.stderr).decode(errors="replace").strip()
        return "healthy" if proc.returncode == 0 else f"{proc.returncode}: {out}"

    def logs(self, service: str) -> str:
        proc = subprocess.run(
            ["podman", "logs", self.container(service)],
            capture_output=True, timeout=30, check=False,
        )
        return (proc.stdout + proc.stderr).decode(errors="replace")

    def volume_path(self, volume: str) -> Path:
        """Where a named volume of the project lives on this host."""
        ref = f"{self.name}_{volume}"
        return Path(_podman("volume", "inspect", "--format", "{{.Mountpoint}}", ref).strip())

    def down(self) -> None:
        """Remove the project's containers and volumes, whatever state they are in."""
        with contextlib.suppress(SandboxError, subprocess.TimeoutExpired):
            self.compose("down", "-v", "-t", "5", timeout=120)
        label = f"label=io.podman.compose.project={self.name}"
        left = _podman("ps", "-a", "-q", "--filter", label).split()
        if left:
            _podman("rm", "-f", "-v", *left)
        volumes = _podman("volume", "ls", "-q", "--filter", label).split()
        if volumes:
            _podman("volume", "rm", "-f", *volumes)
