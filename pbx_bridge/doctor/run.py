"""Run every check in order, with the bridge's own settings and AMI login."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pbx_bridge.config import Settings
from pbx_bridge.directory.store import Directory
from pbx_bridge.doctor import ami_checks, host_checks, pbx_checks
from pbx_bridge.doctor.probe import Pbx
from pbx_bridge.doctor.report import Finding, failed, passed
from pbx_bridge.pbx.ami import AmiClient, AmiError


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


async def _login(settings: Settings) -> tuple[AmiClient | None, Finding]:
    ami = settings.ami
    where = f"{ami.host}:{ami.port} as {ami.username}"
    if not ami.secret.get_secret_value():
        return None, failed("ami-login", f"no AMI secret for {where}",
                            "set PBX_BRIDGE_AMI__SECRET (or [ami] secret)")
    if not await _reachable(ami.host, ami.port, ami.connect_timeout):
        return None, failed("ami-login", f"nothing answers on {ami.host}:{ami.port}",
                            "manager.conf [general] enabled = yes, port, bindaddr; [ami] host/port")
    client = AmiClient(ami.host, ami.port, ami.username, ami.secret.get_secret_value(),
                       action_timeout=ami.action_timeout, connect_timeout=ami.connect_timeout,
                       events="off")
    await client.start()
    try:
        await client.wait_connected(ami.connect_timeout + 1.0)
    except AmiError:
        await client.close()
        return None, failed("ami-login", f"AMI refused the login {where}", "the secret, "
                            "the user's permit/deny in manager.conf, then 'manager reload'")
    return client, passed("ami-login", f"logged in to {where}")


async def diagnose(settings: Settings, directory: Directory) -> list[Finding]:
    # The AMI client logs its reconnect attempts; the doctor reports in its own lines.
    logging.getLogger("pbx_bridge.pbx").setLevel(logging.CRITICAL)
    client, login = await _login(settings)
    if client is None:
        return [login]
    pbx = Pbx(client)
    try:
        findings = [login, await ami_checks.ami_write(pbx), await ami_checks.ami_no_command(pbx),
                    await ami_checks.ami_read(pbx, settings.ami.username),
                    await ami_checks.channelvars(pbx), await ami_checks.timestampevents(pbx),
                    await pbx_checks.modules(pbx)]
        feature, name = await pbx_checks.star1_feature(pbx)
        findings += [feature, await pbx_checks.subroutine(pbx),
                     await pbx_checks.dynamic_features(pbx, directory, name),
                     await pbx_checks.endpoints(pbx, directory),
                     await host_checks.monitor_folder(pbx, settings),
                     await host_checks.astdb_policy(pbx, directory, settings)]
    except AmiError as exc:
        findings = [login, failed("ami", f"the AMI link failed during the checks: {exc}",
                                  "check Asterisk's log; run the doctor again")]
    finally:
        await client.close()
    return findings
