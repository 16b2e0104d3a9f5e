"""The bridge's AMI user, as shipped in asterisk-conf/manager.conf, is refused what it
does not need: Originate (with System(), a shell command) and the CLI (issue 9, item 3).
The harness user (sandbox only) is the control: the same actions succeed for it."""

from __future__ import annotations

import uuid

from devtools.sandbox import Sandbox
from pbx_bridge.pbx.ami import AmiClient, is_success
from tests.support.pbx import AMI_USER


async def _bridge_user(sandbox: Sandbox) -> AmiClient:
    client = AmiClient("127.0.0.1", sandbox.ami_port, AMI_USER, sandbox.secrets.ami)
    await client.start()
    await client.wait_connected(10)
    return client


async def test_bridge_user_cannot_originate_or_run_cli_commands(pbx, ami_log) -> None:
    marker = f"/tmp/pbx-bridge-pwned-{uuid.uuid4().hex[:8]}"
    shell = {
        "Channel": "Local/7778888@from-internal",
        "Application": "System",
        "Data": f"touch {marker}",
        "Async": "false",
    }
    cli_shell = f"channel originate Local/7778888@from-internal application System touch {marker}"
    bridge = await _bridge_user(pbx)
    try:
        for action, headers in (("Originate", shell), ("Command", {"Command": cli_shell}),
                                ("Command", {"Command": "core show version"})):
            resp = await bridge.send_action(action, headers)
            assert not is_success(resp), (action, resp)
            assert resp.get("Message") == "Permission denied", (action, resp)
        # What the bridge does use still works with the same login.
        resp, _ = await bridge.send_list_action("CoreShowChannels")
        assert is_success(resp), resp
    finally:
        await bridge.close()
    assert not pbx.host_path(marker).exists()
    # Control: the harness user may (so the refusal above is the class, not the link).
    assert "Asterisk" in await ami_log.client.command("core show version")
