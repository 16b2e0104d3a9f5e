"""`pbx-bridge serve` refuses an AMI secret that everybody knows.

asterisk-conf/ ships the placeholder `CHANGE-ME` where a secret belongs, and earlier
versions shipped `pbx-bridge-demo-secret`: an Asterisk still configured with either lets
any local user log in to AMI as the bridge. An empty secret means the setting was
forgotten. `serve --demo` or `[ami] allow_demo_secret = true` accepts them anyway (a
throwaway demo on a machine of one's own).
"""

from __future__ import annotations

from pbx_bridge.config import AmiSettings, Settings

__all__ = ["KNOWN_SECRETS", "refused_secret"]

# Lowercased; compared after stripping blanks.
KNOWN_SECRETS = frozenset({"change-me", "changeme", "pbx-bridge-demo-secret", "demo", "secret"})


def refused_secret(settings: Settings, *, demo: bool = False) -> str | None:
    """One line saying why the AMI secret is refused, or None if it may be used. With
    [[pbx]] nodes, each node's secret is checked (the first refused one is named)."""
    if demo:
        return None
    if not settings.pbx:
        return _refused(settings.ami, "", "PBX_BRIDGE_AMI__SECRET (or [ami] secret)")
    for node in settings.nodes():
        env = f"PBX_BRIDGE_PBX_SECRETS__{node.name.upper()} (or its [[pbx]] secret)"
        refused = _refused(node, f"pbx node {node.name!r}: ", env)
        if refused:
            return refused
    return None


def _refused(ami: AmiSettings, where: str, setting: str) -> str | None:
    if ami.allow_demo_secret:
        return None
    value = ami.secret.get_secret_value().strip()
    if not value:
        return (
            f"{where}no AMI secret: set {setting} to the secret of "
            f"the '{ami.username}' user in Asterisk's manager.conf"
        )
    if value.lower() in KNOWN_SECRETS:
        return (
            f"{where}the AMI secret is a published placeholder or demo value: set a random "
            f"one in manager.conf and {setting.split(' (')[0]} (or run with --demo to "
            "accept it)"
        )
    return None
