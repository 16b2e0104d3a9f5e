"""The bridge's AMI user, as shipped in asterisk-conf/manager.conf, is refused what it
does not need: the CLI (issue 9, item 3), `channel originate ... System` through it
included. Since issue 14 it has the `originate` class for click-to-call: an Async
Originate is accepted (README "AMI user" says what that allows). The harness user
(sandbox only) is the control: the refused actions succeed for it."""

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


async def test_bridge_user_cannot_run_cli_commands(pbx, ami_log) -> None:
    marker = f"/tmp/pbx-bridge-pwned-{uuid.uuid4().hex[:8]}"
    cli_shell = f"channel originate Local/7778888@from-internal application System touch {marker}"
    bridge = await _bridge_user(pbx)
    try:
        for action, headers in (("Command", {"Command": cli_shell}),
                                ("Command", {"Command": "core show version"})):
            resp = await bridge.send_action(action, headers)
            assert not is_success(resp), (action, resp)
            assert resp.get("Message") == "Permission denied", (action, resp)
        # What the bridge does use still works with the same login: the click-to-call
        # Originate (class originate; to a device that does not exist: no call).
        resp, _ = await bridge.send_list_action("CoreShowChannels")
        assert is_success(resp), resp
        resp = await bridge.send_action("Originate", {
            "Channel": "PJSIP/pbx-bridge-no-such-device", "Context": "pbx-bridge-dial",
            "Exten": "7778888", "Priority": "1", "Async": "true"})
        assert resp.get("Message") != "Permission denied", resp
    finally:
        await bridge.close()
    assert not pbx.host_path(marker).exists()
    # Control: the harness user may (so the refusal above is the class, not the link).
    assert "Asterisk" in await ami_log.client.command("core show version")
