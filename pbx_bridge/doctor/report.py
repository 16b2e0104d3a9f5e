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
    node: str = ""  # the PBX node it is about ("": the directory, not one node)

    def line(self, named: bool = False) -> str:
        """``named``: say the node (with several nodes configured)."""
        fix = f" -> fix: {self.hint}" if self.status != "pass" and self.hint else ""
        where = f"[{self.node}] " if named and self.node else ""
        return f"{_LABEL[self.status]} {where}{self.check}: {self.detail}{fix}"


def passed(check: str, detail: str) -> Finding:
    return Finding(check, "pass", detail)


def failed(check: str, detail: str, hint: str) -> Finding:
    return Finding(check, "fail", detail, hint)


def cannot(check: str, why: str, hint: str) -> Finding:
    """A check these AMI rights (or this host) cannot answer: not a pass."""
    return Finding(check, "unknown", f"cannot check with these rights: {why}", hint)


def all_passed(findings: list[Finding]) -> bool:
    return bool(findings) and all(f.status == "pass" for f in findings)


def by_node(findings: list[Finding]) -> dict[str, bool]:
    """Each node named by a finding -> whether all of its checks passed."""
    nodes: dict[str, list[Finding]] = {}
    for f in findings:
        if f.node:
            nodes.setdefault(f.node, []).append(f)
    return {name: all_passed(found) for name, found in nodes.items()}


def as_text(findings: list[Finding], named: bool = False) -> str:
    """One line per finding, then the count; ``named``: lines and count name the node."""
    ok = sum(f.status == "pass" for f in findings)
    lines = [f.line(named) for f in findings]
    total = f"{ok} of {len(findings)} checks passed"
    if named:
        total += " (" + ", ".join(f"{name} {'ok' if good else 'FAIL'}"
                                  for name, good in by_node(findings).items()) + ")"
    lines.append(total)
    return "\n".join(lines)


def as_json(findings: list[Finding]) -> str:
    return json.dumps({"ok": all_passed(findings), "nodes": by_node(findings),
                       "checks": [asdict(f) for f in findings]}, indent=2)
