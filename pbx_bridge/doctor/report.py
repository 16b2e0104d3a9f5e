"""One doctor finding per line: what was checked, how it went, and the fix."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal

Status = Literal["pass", "fail", "unknown"]
_LABEL = {"pass": "ok  ", "fail": "FAIL", "unknown": "??  "}


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str
    hint: str = ""  # the fix; empty when it passed

    def line(self) -> str:
        fix = f" -> fix: {self.hint}" if self.status != "pass" and self.hint else ""
        return f"{_LABEL[self.status]} {self.check}: {self.detail}{fix}"


def passed(check: str, detail: str) -> Finding:
    return Finding(check, "pass", detail)


def failed(check: str, detail: str, hint: str) -> Finding:
    return Finding(check, "fail", detail, hint)


def cannot(check: str, why: str, hint: str) -> Finding:
    """A check these AMI rights (or this host) cannot answer: not a pass."""
    return Finding(check, "unknown", f"cannot check with these rights: {why}", hint)


def all_passed(findings: list[Finding]) -> bool:
    return bool(findings) and all(f.status == "pass" for f in findings)


def as_text(findings: list[Finding]) -> str:
    ok = sum(f.status == "pass" for f in findings)
    lines = [f.line() for f in findings]
    lines.append(f"{ok} of {len(findings)} checks passed")
    return "\n".join(lines)


def as_json(findings: list[Finding]) -> str:
    return json.dumps({"ok": all_passed(findings), "checks": [asdict(f) for f in findings]},
                      indent=2)
