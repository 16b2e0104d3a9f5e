"""The running dialplan as `ShowDialPlan` lists it, and the questions the doctor asks
of it: which priorities dial a device, and is `DYNAMIC_FEATURES` set before them.

Read-only and call-free: only the `ListDialplan` rows Asterisk sends (class
`reporting`). Extension patterns (``_XXXX*XXX``) are turned into regular expressions
without nested quantifiers; the input is the PBX's own dialplan, not a client's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# The priority that dials, or sets, something: context, extension, priority, app, data.


@dataclass(frozen=True)
class Step:
    context: str
    exten: str
    priority: int
    app: str
    data: str


_PATTERN_CLASSES = {"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]", ".": ".+", "!": ".*"}


def pattern_regex(exten: str) -> re.Pattern[str]:
    """An extension (literal, or `_` pattern) as a full-match regex."""
    if not exten.startswith("_"):
        return re.compile(re.escape(exten))
    out, i, body = [], 0, exten[1:]
    while i < len(body):
        ch = body[i]
        if ch == "[":
            end = body.find("]", i)
            if end < 0:
                return re.compile(re.escape(exten))  # not a pattern Asterisk accepts either
            inner = body[i + 1 : end].replace("\\", "\\\\").replace("^", "\\^")
            out.append(f"[{inner}]")
            i = end + 1
            continue
        upper = ch.upper()
        out.append(_PATTERN_CLASSES.get(upper, re.escape(ch)))
        i += 1
    return re.compile("".join(out))


def steps(rows: Iterable[dict[str, str]]) -> list[Step]:
    out = []
    for row in rows:
        if row.get("Event") != "ListDialplan" or "Extension" not in row:
            continue
        try:
            priority = int(row.get("Priority", ""))
        except ValueError:
            continue  # hints and labels-only rows
        out.append(Step(row.get("Context", ""), row["Extension"], priority,
                        row.get("Application", ""), row.get("AppData", "")))
    return out


def _dial_targets(data: str) -> list[str]:
    return [t.strip() for t in data.split(",", 1)[0].split("&") if t.strip()]


def dials_device(step: Step, device: str) -> bool:
    """Does this Dial reach `device` (``PJSIP/<endpoint>``), literally or through
    ``${EXTEN}`` on an extension whose pattern matches the endpoint?"""
    if step.app.lower() != "dial":
        return False
    for target in _dial_targets(step.data):
        if target.lower() == device.lower():
            return True
        if "${EXTEN}" in target and target.count("${") == 1:
            head, _, tail = target.partition("${EXTEN}")
            if not (device.lower().startswith(head.lower()) and device.endswith(tail)):
                continue
            value = device[len(head) : len(device) - len(tail)]
            if value and pattern_regex(step.exten).fullmatch(value):
                return True
    return False


_DYNAMIC = re.compile(r"^_{0,2}DYNAMIC_FEATURES=(?P<value>.*)$")


def sets_feature(step: Step, feature: str) -> bool:
    if step.app.lower() != "set":
        return False
    m = _DYNAMIC.match(step.data.strip())
    return m is not None and feature in m["value"].split("#")


def _feature_before(all_steps: list[Step], dial: Step, feature: str) -> bool:
    return any(
        s.context == dial.context and s.exten == dial.exten and s.priority < dial.priority
        and sets_feature(s, feature)
        for s in all_steps
    )


def _local_contexts_with_feature(all_steps: list[Step], feature: str) -> set[str]:
    """Contexts entered through a ``Local/...@ctx`` Dial that set the feature first:
    the Local channel inherits ``__DYNAMIC_FEATURES`` into them."""
    out = set()
    for s in all_steps:
        if s.app.lower() != "dial" or not _feature_before(all_steps, s, feature):
            continue
        for target in _dial_targets(s.data):
            m = re.fullmatch(r"(?i)local/[^@]*@([^/,]+)(?:/n)?", target)
            if m:
                out.add(m[1])
    return out


def dial_paths(all_steps: list[Step], device: str, feature: str) -> dict[Step, bool]:
    """Every Dial of `device` -> whether the feature is set on its path."""
    inherited = _local_contexts_with_feature(all_steps, feature)
    return {
        s: s.context in inherited or _feature_before(all_steps, s, feature)
        for s in all_steps
        if dials_device(s, device)
    }
