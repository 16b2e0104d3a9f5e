"""Broken copies of asterisk-conf/ for `pbx-bridge doctor`'s tests: each a running
sandbox of its own (name <session>-doctor, ports at the session's offset + 600)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from devtools.sandbox import DEFAULT_CONF_DIR, Sandbox, SandboxError

Edit = Callable[[Path], None]


def replace(name: str, pattern: str, new: str) -> Edit:
    """An edit of one file of the copy: `pattern` (a regex, multiline) must match."""

    def edit(conf: Path) -> None:
        path = conf / name
        text, n = re.subn(pattern, new, path.read_text(), flags=re.MULTILINE)
        assert n >= 1, f"{name}: {pattern!r} not found"
        path.write_text(text)

    return edit


@contextmanager
def sandbox_with(
    tmp_path: Path, *edits: Edit, conf_dir: Path = DEFAULT_CONF_DIR, foreign: bool = False
) -> Iterator[Sandbox]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    conf = tmp_path / "asterisk-conf"
    shutil.copytree(conf_dir, conf)
    for edit in edits:
        edit(conf)
    base = os.environ.get("PBX_BRIDGE_SANDBOX_NAME", "test")
    offset = int(os.environ.get("PBX_BRIDGE_SANDBOX_PORT_OFFSET", "0")) + 600
    sb = Sandbox(name=f"{base}-doctor", conf_dir=conf, port_offset=offset, foreign=foreign)
    sb.stop()
    try:
        sb.start(timeout=60)
    except SandboxError as exc:
        raise AssertionError(f"Asterisk with a broken configuration: {exc}") from exc
    try:
        yield sb
    finally:
        sb.stop()
