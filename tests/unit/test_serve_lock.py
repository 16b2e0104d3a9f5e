"""On SQLite, one `pbx-bridge serve` per database file (issue 16: replicas need
PostgreSQL; two services on one SQLite file would each start the "always" recordings
and deliver every webhook). A second `serve` is refused in one line; a killed one leaves
no lock behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pbx_bridge.storage.serve_lock import one_serve_per_file
from pbx_bridge.storage.url import StorageError, parse_url

PBX_BRIDGE = Path(sys.executable).with_name("pbx-bridge")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environ(db: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    env.update(
        PBX_BRIDGE_AMI__SECRET="an-unpublished-secret-for-this-test",
        PBX_BRIDGE_AMI__PORT="9",  # nothing answers: the service runs, not ready
        PBX_BRIDGE_HTTP__PORT=str(port),
        PBX_BRIDGE_DATABASE__URL=f"sqlite:///{db}",
    )
    return env


def serving(env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([str(PBX_BRIDGE), "serve"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            port = env["PBX_BRIDGE_HTTP__PORT"]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return proc
        except OSError:
            assert time.monotonic() < deadline, "serve never answered /healthz"
            time.sleep(0.1)


def test_a_second_serve_on_one_sqlite_file_is_refused_and_a_killed_one_frees_it(
    tmp_path: Path,
) -> None:
    db = tmp_path / "d.sqlite3"
    first_env = environ(db, free_port())
    subprocess.run([str(PBX_BRIDGE), "db", "upgrade"], env=first_env, check=True,
                   stdout=subprocess.DEVNULL)
    first = serving(first_env)
    try:
        second = subprocess.run([str(PBX_BRIDGE), "serve"], env=environ(db, free_port()),
                                capture_output=True, text=True, timeout=60)
        lines = second.stderr.strip().splitlines()
        assert second.returncode == 1
        assert len(lines) == 1 and f"pid {first.pid}" in lines[0], lines
        assert "another pbx-bridge serve" in lines[0] and "PostgreSQL" in lines[0]
        assert first.poll() is None  # the first one is untouched
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # as a crash: no clean-up of its own
        first.wait(timeout=20)
    again = serving(first_env)  # no stale lock
    again.send_signal(signal.SIGTERM)
    assert again.wait(timeout=20) == 0


def test_postgresql_and_memory_take_no_lock(tmp_path: Path) -> None:
    for url in ("postgresql://u@/db?host=/nowhere", "sqlite:///:memory:"):
        with one_serve_per_file(parse_url(url)), one_serve_per_file(parse_url(url)):
            pass
    assert not list(tmp_path.iterdir())


def test_in_one_process_the_lock_is_exclusive_too(tmp_path: Path) -> None:
    url = parse_url(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    with one_serve_per_file(url), pytest.raises(StorageError, match="another pbx-bridge"):
        with one_serve_per_file(url):
            pass
    with one_serve_per_file(url):  # given back
        pass
