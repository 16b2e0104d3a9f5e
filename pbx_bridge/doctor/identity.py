"""With several PBX nodes: each node's Asterisk has a SystemName of its own (issue 16).

Asterisk puts it in front of every Uniqueid and Linkedid, which is what keeps call ids
unique across nodes; `serve` keeps a node whose name is empty or shared unready. The
rule is `core.nodes.systemname_problem`, the one `Nodes` applies."""

from __future__ import annotations

from collections.abc import Mapping

from pbx_bridge.core.nodes import systemname_problem
from pbx_bridge.doctor.probe import Denied, Pbx
from pbx_bridge.doctor.report import Finding, cannot, failed, passed

CHECK = "systemname"


async def read_system_name(pbx: Pbx) -> str | None:
    """The node's SystemName ("" when it has none); None when CoreSettings is refused."""
    try:
        core = await pbx.core_settings()
    except Denied:
        return None
    return core.get("SystemName", "").strip()


def systemname(node: str, names: Mapping[str, str | None]) -> Finding:
    """``names``: every configured node -> its SystemName as read (None: not read, the
    node unreachable or CoreSettings refused)."""
    own = names[node]
    if own is None:
        return cannot(CHECK, "CoreSettings refused", "give the bridge's AMI user write "
                      "class system or reporting")
    others = {name: theirs for name, theirs in names.items() if name != node}
    why = systemname_problem(own, others.items())
    if why is not None:
        return failed(CHECK, why, f"systemname = {node} in asterisk.conf [options] of this "
                      "node's Asterisk (a name no other node has), then restart Asterisk")
    unread = sorted(name for name, theirs in others.items() if theirs is None)
    detail = f"{own!r}, no other node's"
    if unread:
        detail += f" (not compared with {', '.join(unread)}: not read)"
    return passed(CHECK, detail)
