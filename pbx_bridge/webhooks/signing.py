"""Standard Webhooks signatures (https://www.standardwebhooks.com/): receivers verify
them with any Standard Webhooks library. HMAC-SHA256 with the subscription's key over
``id.timestamp.body``, sent as ``webhook-signature: v1,<base64>``; the key is shown once
as ``whsec_<base64 key>``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["new_secret", "sign"]

_PREFIX = "whsec_"


def new_secret() -> str:
    return _PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(_PREFIX))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()
