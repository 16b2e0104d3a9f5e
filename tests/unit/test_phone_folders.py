"""Phone folders of finished runs are pruned (kill_stale); a live run's are kept; a
phone's folder and control port are its own."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.cli import main
from devtools.phones import PHONES_DIR, Phone, PhoneError, listens_on
from devtools.sandbox import Sandbox


def test_dead_runs_folders_are_pruned_live_ones_kept(tmp_path: Path) -> None:
    sb = Sandbox(name="unit", root=tmp_path)
    base = tmp_path / PHONES_DIR / "unit"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    names = {
        "gone": f"0003_210-{dead}-3",
        "gone_carrier": f"7778888-{dead}-0",
        "mine": f"0003_210-{os.getpid()}-1",
        "odd": "notes",  # not a phone folder: left alone
    }
    for name in names.values():
        (base / name).mkdir(parents=True)
        (base / name / "baresip.log").write_text("log")
    other = tmp_path / PHONES_DIR / "other" / f"0003_210-{dead}-3"  # another instance
    other.mkdir(parents=True)

    Phone.kill_stale(sb)

    assert sorted(p.name for p in base.iterdir()) == sorted([names["mine"], names["odd"]])
    assert other.is_dir()


# ---- issue 9, item 9: a phone's folder never leaves its base; its control port is its own


def test_a_user_name_that_walks_out_of_the_phones_folder_is_refused(tmp_path: Path) -> None:
    sb = Sandbox(name="unit", root=tmp_path / "root")
    (sb.root / PHONES_DIR / "unit").mkdir(parents=True)  # as on a machine that ran phones
    # PHONES_DIR is three levels deep plus the instance: enough "../" to reach tmp_path.
    depth = len(Path(PHONES_DIR).parts) + 2
    user = "../" * depth + "victim"
    victim = None
    with contextlib.suppress(PhoneError):
        phone = Phone(sb, user, password="x")
        victim = tmp_path / phone.name.rsplit("/", 1)[-1]
        victim.mkdir(parents=True)
        (victim / "precious").write_text("keep me")
        phone._write_config()
    assert victim is None or (victim / "precious").read_text() == "keep me"
    with pytest.raises(PhoneError, match="not a SIP user name"):
        Phone(sb, user, password="x")


@pytest.mark.parametrize("user", ["..", ".", "a/b", "", "0003*210/..", "x" * 65, "a\nb"])
def test_phone_user_names_are_checked(tmp_path: Path, user: str) -> None:
    with pytest.raises(PhoneError):
        Phone(Sandbox(name="unit", root=tmp_path), user, password="x")


def test_a_tampered_folder_name_is_refused_before_deleting(tmp_path: Path) -> None:
    sb = Sandbox(name="unit", root=tmp_path / "root")
    (sb.root / PHONES_DIR / "unit").mkdir(parents=True)
    phone = Phone(sb, "0003*210", password="x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep me")
    phone.name = "../../../../../outside"
    with pytest.raises(PhoneError, match="outside"):
        phone._write_config()
    assert (outside / "precious").read_text() == "keep me"


@pytest.mark.parametrize("ext", ["../../etc", "0003*210/../x", "abc", "1" * 16])
def test_phone_cli_takes_extension_numbers_only(ext: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["phone", "--ext", ext, "--sandbox", "nowhere"])
    assert exc.value.code == 2


class _Foreign:
    """Another process's TCP listener (a stand-in for somebody else's baresip)."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c",
             "import socket,sys,time\n"
             "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
             f"s.bind(('127.0.0.1', {port})); s.listen(); print('up', flush=True)\n"
             "s.settimeout(30)\n"
             "try:\n    c,_=s.accept(); print('accepted', flush=True); time.sleep(30)\n"
             "except OSError: pass\n"],
            stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "up"

    def close(self) -> bool:
        """Stop it; True if something connected to it."""
        self.proc.kill()
        out, _ = self.proc.communicate(timeout=10)
        return "accepted" in out


def test_listens_on_tells_our_listener_from_another_process() -> None:
    with socket.socket() as mine:
        mine.bind(("127.0.0.1", 0))
        mine.listen()
        port = mine.getsockname()[1]
        assert listens_on(os.getpid(), port)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    foreign = _Foreign(port)
    try:
        assert not listens_on(os.getpid(), port)
        assert listens_on(foreign.proc.pid, port)
    finally:
        foreign.close()


async def test_a_carrier_phone_never_attaches_to_a_taken_control_port(tmp_path: Path) -> None:
    sb = Sandbox(name="unit", root=tmp_path)  # no baresip in it: the phone cannot start
    phone = Phone.carrier(sb, "7778888", password="x")
    foreign = _Foreign(phone.ctrl_port)
    try:
        with pytest.raises(PhoneError):
            await phone.start(timeout=10)
    finally:
        await phone.stop()
        assert not foreign.close(), "the phone talked to another process's control port"


async def test_a_control_port_taken_after_the_check_is_detected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = Sandbox(name="unit", root=tmp_path)
    phone = Phone(sb, "0003*210", password="x", register=False)
    monkeypatch.setattr(Phone, "_ports_free", lambda self: True)  # the race: free, then not
    foreign = _Foreign(phone.ctrl_port)
    try:
        with pytest.raises(PhoneError, match="another process"):
            await phone.start(timeout=10)
    finally:
        await phone.stop()
        foreign.close()
