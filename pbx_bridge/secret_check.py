"""`pbx-bridge serve` refuses an AMI secret that everybody knows.

asterisk-conf/ ships the placeholder `CHANGE-ME` where a secret belongs, and earlier
versions shipped `pbx-bridge-demo-secret`: an Asterisk still configured with either lets
any local user log in to AMI as the bridge. An empty secret means the setting was
forgotten. `serve --demo` or `[ami] allow_demo_secret = true` accepts them anyway (a
throwaway demo on a machine of one's own).
"""

from __future__ import annotations

from pbx_bridge.config import Settings

__all__ = ["KNOWN_SECRETS", "refused_secret"]

# Lowercased; compared after stripping blanks.
KNOWN_SECRETS = frozenset({"change-me", "changeme", "pbx-bridge-demo-secret", "demo", "secret"})


def refused_secret(settings: Settings, *, demo: bool = False) -> str | None:
    """One line saying why the AMI secret is refused, or None if it may be used."""
    if demo or settings.ami.allow_demo_secret:
        return None
    value = settings.ami.secret.get_secret_value().strip()
    if not value:
        return (
            "no AMI secret: set PBX_BRIDGE_AMI__SECRET (or [ami] secret) to the secret of "
            f"the '{settings.ami.username}' user in Asterisk's manager.conf"
        )
    if value.lower() in KNOWN_SECRETS:
        return (
            "the AMI secret is a published placeholder or demo value: set a random one in "
            "manager.conf and PBX_BRIDGE_AMI__SECRET (or run with --demo to accept it)"
        )
    return None
