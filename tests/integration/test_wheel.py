"""`pip install` of the built wheel, as users install it: the wheel is built from the
runtime package alone (no devtools/, no tests/), installed into a fresh venv, and its
`pbx-bridge` serves the real sandbox Asterisk from a folder outside the checkout:
/readyz answers 200 and a request with a bearer token is served."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tests.reliability.support import JOHN, free_port
from tests.support.bridge import demo_directory, serve_environ

CHECKOUT = Path(__file__).resolve().parents[2]
SETUP = 600  # seconds: pip may fetch the build backend and the dependencies


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=SETUP, check=False)
    assert done.returncode == 0, f"{args}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _build_wheel(tmp_path: Path) -> Path:
    """From a copy holding only what the wheel is made of: it cannot need the rest."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(CHECKOUT / name, src / name)
    shutil.copytree(CHECKOUT / "pbx_bridge", src / "pbx_bridge",
                    ignore=shutil.ignore_patterns("__pycache__"))
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist", src,
         cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("pbx_bridge-*.whl")
    return wheel


def _get(url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_wheel_installs_in_a_fresh_venv_and_serves(pbx, tmp_path) -> None:
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"pbx_bridge", wheel.name.split("-py")[0]
                                                + ".dist-info"}, names
    assert "pbx_bridge/storage/migrations/versions/0001_initial.py" in names

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    _run(venv / "bin" / "pip", "install", "-q", wheel, cwd=tmp_path)
    outside = tmp_path / "run"
    outside.mkdir()
    assert "serve" in _run(venv / "bin" / "pbx-bridge", "--help", cwd=outside)
    where = _run(venv / "bin" / "python", "-c", "import pbx_bridge; print(pbx_bridge.__file__)",
                 cwd=outside)
    assert where.startswith(str(venv)), where

    directory = demo_directory(tmp_path)
    client_id, _ = directory.create_app(JOHN, "wheel-test")
    token = directory.issue_token(client_id)[0]
    directory.close()
    port = free_port()
    env = serve_environ(pbx, tmp_path, port)
    env.pop("PYTHONPATH", None)
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(venv / "bin" / "pbx-bridge"), "serve"], cwd=outside,
                                env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while _get(f"{base}/readyz") != 200:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert _get(f"{base}/uapi/phoneCalls/@me/0003*210", token) == 204  # served, no call
        assert _get(f"{base}/uapi/phoneCalls/@me/0003*210") == 401
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert token not in log.read_text()
