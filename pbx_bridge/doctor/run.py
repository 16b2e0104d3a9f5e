"""Run every check in order, for each configured PBX node, with the bridge's own
settings and that node's AMI login."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from dataclasses import dataclass, field

from pbx_bridge.config import Settings
from pbx_bridge.directory.store import Directory
from pbx_bridge.doctor import ami_checks, host_checks, identity, pbx_checks
from pbx_bridge.doctor.probe import Pbx
from pbx_bridge.doctor.report import Finding, failed, passed
from pbx_bridge.doctor.scope import NodeScope, scopes, unplaced
from pbx_bridge.pbx.ami import AmiClient, AmiError

__all__ = ["UnknownNode", "diagnose"]


class UnknownNode(ValueError):
    """`--node` names no configured node."""

    @staticmethod
    def message(name: str, names: list[str]) -> str:
        return f"no PBX node is named {name!r} (configured: {', '.join(names)})"


@dataclass
class NodeReport:
    findings: list[Finding] = field(default_factory=list)
    checked: bool = False  # logged in, and every check ran
    system_name: str | None = None  # None: not read


async def _reachable(host: str, port: int, timeout: float) -> bool:
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _login(scope: NodeScope) -> tuple[AmiClient | None, Finding]:
    ami = scope.node
    where = f"{ami.host}:{ami.port} as {ami.username}"
    if not ami.secret.get_secret_value():
        return None, failed("ami-login", f"no AMI secret for {where}",
                            f"set {scope.secret_setting()}")
    if not await _reachable(ami.host, ami.port, ami.connect_timeout):
        return None, failed("ami-login", f"nothing answers on {ami.host}:{ami.port}",
                            "manager.conf [general] enabled = yes, port, bindaddr; "
                            + scope.address_setting())
    client = AmiClient(ami.host, ami.port, ami.username, ami.secret.get_secret_value(),
                       action_timeout=ami.action_timeout, connect_timeout=ami.connect_timeout,
                       events="off")
    await client.start()
    try:
        await client.wait_connected(ami.connect_timeout + 1.0)
    except AmiError:
        await client.close()
        secret = "the secret" if not scope.listed else f"the secret ({scope.secret_setting()})"
        return None, failed("ami-login", f"AMI refused the login {where}", f"{secret}, "
                            "the user's permit/deny in manager.conf, then 'manager reload'")
    return client, passed("ami-login", f"logged in to {where}")


async def _checks(pbx: Pbx, scope: NodeScope, directory: Directory) -> list[Finding]:
    own = scope.extensions
    findings = [await ami_checks.ami_write(pbx), await ami_checks.ami_no_command(pbx),
                await ami_checks.ami_read(pbx, scope.node.username),
                await ami_checks.channelvars(pbx), await ami_checks.timestampevents(pbx),
                await pbx_checks.modules(pbx)]
    feature, name = await pbx_checks.star1_feature(pbx)
    return [
        *findings, feature, await pbx_checks.subroutine(pbx),
        await pbx_checks.dynamic_features(pbx, list(own.values()), name),
        await pbx_checks.endpoints(pbx, list(own.values())),
        await host_checks.monitor_folder(pbx, scope.recordings.monitor_dir,
                                         scope.monitor_dir_setting()),
        await host_checks.astdb_policy(pbx, directory, scope.recordings.directory, own),
    ]


async def _check_node(scope: NodeScope, directory: Directory, *, several: bool) -> NodeReport:
    """One node's findings; ``several``: also read its SystemName (for `identity`)."""
    client, login = await _login(scope)
    report = NodeReport([login])
    if client is None:
        return report
    pbx = Pbx(client)
    try:
        report.findings += await _checks(pbx, scope, directory)
        if several:
            report.system_name = await identity.read_system_name(pbx)
        report.checked = True
    except AmiError as exc:
        report.findings = [login, failed("ami", f"the AMI link failed during the checks: {exc}",
                                         "check Asterisk's log; run the doctor again")]
    finally:
        await client.close()
    return report


async def _system_name_only(scope: NodeScope) -> str | None:
    """A node not checked this time (``--node``): its SystemName only, to compare with."""
    client, _ = await _login(scope)
    if client is None:
        return None
    try:
        return await identity.read_system_name(Pbx(client))
    except AmiError:
        return None
    finally:
        await client.close()


async def diagnose(settings: Settings, directory: Directory,
                   only: str | None = None) -> list[Finding]:
    """Every configured node's findings, node after node (each naming its node); ``only``:
    that node's (UnknownNode if none is named so). With several nodes, each node's list
    ends with its `systemname` check, against every configured node's. Without ``only``,
    a `directory-nodes` failure (no node) when extensions name a node not configured."""
    # The AMI client logs its reconnect attempts; the doctor reports in its own lines.
    logging.getLogger("pbx_bridge.pbx").setLevel(logging.CRITICAL)
    every = scopes(settings, directory)
    chosen = [s for s in every if only is None or s.name == only]
    if not chosen:
        raise UnknownNode(UnknownNode.message(str(only), [s.name for s in every]))
    several = len(every) > 1
    # Nodes are independent: checked at once, so an unreachable one delays no other.
    reports = await asyncio.gather(*(_check_node(s, directory, several=several)
                                     for s in chosen))
    if several:
        by_name = {s.name: r for s, r in zip(chosen, reports, strict=True)}
        names = {s.name: by_name[s.name].system_name if s.name in by_name
                 else await _system_name_only(s) for s in every}
        for s, r in zip(chosen, reports, strict=True):
            if r.checked:
                r.findings.append(identity.systemname(s.name, names))
    found = [dataclasses.replace(f, node=s.name)
             for s, r in zip(chosen, reports, strict=True) for f in r.findings]
    lost = unplaced(settings, directory) if only is None else None
    return found if lost is None else [*found, lost]
