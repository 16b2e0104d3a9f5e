"""A sandbox Asterisk that loads only the modules asterisk-conf/modules.conf marks as
required, for the tests that prove that set is enough (and that a missing one is seen)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from devtools.sandbox import DEFAULT_CONF_DIR, Sandbox, SandboxError

_LOAD = re.compile(r"^load\s*=\s*(?P<module>[\w.]+\.so)\s*(?:;(?P<why>.*))?$")


def marked_modules(text: str) -> dict[str, str]:
    """modules.conf -> {module name without .so: its mark}: "required", "required for
    the demo", or "" (optional)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _LOAD.match(line.strip())
        if not m:
            continue
        why = (m["why"] or "").strip()
        mark = ("required for the demo" if why.startswith("required for the demo")
                else "required" if why.startswith("required") else "")
        out[m["module"].removesuffix(".so")] = mark
    return out


def required_only(text: str, *, drop: Iterable[str] = ()) -> str:
    """modules.conf with only the lines marked required (either kind), minus `drop`."""
    dropped = set(drop)
    keep = []
    for line in text.splitlines():
        m = _LOAD.match(line.strip())
        if m is None:
            keep.append(line)
            continue
        name = m["module"].removesuffix(".so")
        if (m["why"] or "").strip().startswith("required") and name not in dropped:
            keep.append(line)
    return "\n".join(keep) + "\n"


@contextmanager
def required_modules_sandbox(
    tmp_path: Path, *, drop: Iterable[str] = (), ami_write: str | None = None
) -> Iterator[Sandbox]:
    """A fresh, running sandbox with only the required modules (minus `drop`). Its own
    name and ports (the session sandbox's offset + 500), so it runs beside it.
    `ami_write` replaces the bridge's AMI write classes (manager.conf `write =`)."""
    conf = tmp_path / "asterisk-conf"
    shutil.copytree(DEFAULT_CONF_DIR, conf)
    modules = conf / "modules.conf"
    modules.write_text(required_only(modules.read_text(), drop=drop))
    if ami_write is not None:
        manager = conf / "manager.conf"
        text, n = re.subn(r"(?m)^write\s*=.*$", f"write = {ami_write}", manager.read_text())
        assert n == 1, "manager.conf: expected one write= line (the bridge's AMI user)"
        manager.write_text(text)
    base = os.environ.get("PBX_BRIDGE_SANDBOX_NAME", "test")
    offset = int(os.environ.get("PBX_BRIDGE_SANDBOX_PORT_OFFSET", "0")) + 500
    sb = Sandbox(name=f"{base}-required", conf_dir=conf, port_offset=offset)
    sb.stop()
    try:
        sb.start(timeout=90)
    except SandboxError as exc:
        raise AssertionError(f"Asterisk with only the required modules: {exc}") from exc
    try:
        yield sb
    finally:
        sb.stop()
