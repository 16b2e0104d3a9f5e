"""The apps (OAuth clients) registered to users, and their client secrets.

Secrets are never stored: a client secret is kept as its SHA-256 hex digest only, and
checked in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Row, delete, insert, select, update

from pbx_bridge.config import validation_messages
from pbx_bridge.directory.db import DirectoryDb, DirectoryError
from pbx_bridge.directory.models import App
from pbx_bridge.directory.rows import DirectoryRows
from pbx_bridge.storage.schema import apps, tokens

__all__ = ["MAX_CREDENTIAL_LEN", "Apps", "sha256_hex"]

# The longest client id, client secret or token looked at (longer ones are refused).
MAX_CREDENTIAL_LEN = 512
# Compared against when a client id is unknown, so that both paths cost the same.
_DUMMY_HASH = hashlib.sha256(b"pbx-bridge: no such client").hexdigest()

_APP_SELECT = select(apps.c.client_id, apps.c.name, apps.c.user_id, apps.c.created, apps.c.disabled)


def sha256_hex(text: str) -> str:
    """The SHA-256 hex digest under which a secret or a token is stored."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class Apps:
    """Creating, listing, disabling and deleting apps; checking their client secrets."""

    def __init__(
        self, db: DirectoryDb, rows: DirectoryRows, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = db
        self._rows = rows
        self._clock = clock

    def create_app(self, user_id: int, name: str) -> tuple[str, str]:
        """Register an app to a user. Returns ``(client_id, client_secret)``; the secret
        is shown this once and only its SHA-256 is stored."""
        if self._rows.user(user_id) is None:
            raise DirectoryError(f"no user with id {user_id} (load the directory first)")
        try:
            App(client_id="x", name=name, user_id=user_id, created=datetime.now(UTC))
        except ValidationError as exc:
            raise DirectoryError("app " + "; ".join(validation_messages(exc))) from None
        # Hex, not urlsafe base64: a urlsafe id can begin with "-", and then
        # `pbx-bridge token issue --app ID` reads it as an option (1 id in 64).
        client_id = secrets.token_hex(16)
        client_secret = secrets.token_urlsafe(32)
        with self._db.transaction(write=True, refused="cannot create app: ") as conn:
            conn.execute(
                insert(apps).values(
                    client_id=client_id,
                    name=name,
                    user_id=user_id,
                    secret_hash=sha256_hex(client_secret),
                    created=self._clock(),
                )
            )
        return client_id, client_secret

    def app(self, client_id: str) -> App | None:
        with self._db.transaction() as conn:
            row = conn.execute(_APP_SELECT.where(apps.c.client_id == client_id)).first()
        return _app(row) if row else None

    def apps_of_user(self, user_id: int) -> list[App]:
        with self._db.transaction() as conn:
            rows = conn.execute(
                _APP_SELECT.where(apps.c.user_id == user_id).order_by(
                    apps.c.created, apps.c.client_id
                )
            ).all()
        return [_app(r) for r in rows]

    def all_apps(self) -> list[App]:
        with self._db.transaction() as conn:
            rows = conn.execute(_APP_SELECT.order_by(apps.c.created, apps.c.client_id)).all()
        return [_app(r) for r in rows]

    def set_app_disabled(self, client_id: str, disabled: bool) -> int:
        """Disable (or enable again) an app. Disabling revokes every token of the app, in
        the same transaction; returns how many tokens were revoked."""
        with self._db.transaction(write=True, invalidates=True) as conn:
            cur = conn.execute(
                update(apps).where(apps.c.client_id == client_id).values(disabled=int(disabled))
            )
            if cur.rowcount == 0:
                raise DirectoryError(f"no app with client id {client_id!r}")
            if not disabled:
                return 0
            return conn.execute(delete(tokens).where(tokens.c.client_id == client_id)).rowcount

    def delete_app(self, client_id: str) -> int:
        """Delete an app and every token of it; returns how many tokens were revoked."""
        with self._db.transaction(write=True, invalidates=True) as conn:
            revoked = conn.execute(delete(tokens).where(tokens.c.client_id == client_id)).rowcount
            cur = conn.execute(delete(apps).where(apps.c.client_id == client_id))
            if cur.rowcount == 0:
                raise DirectoryError(f"no app with client id {client_id!r}")
            return revoked

    def verify_client(self, client_id: str, client_secret: str) -> App | None:
        """The app if ``client_secret`` is its secret, else None (constant-time compare).

        A disabled app is returned too (``app.disabled``): the caller refuses it, and can
        tell the operator why, without a second look-up."""
        if not isinstance(client_id, str) or not isinstance(client_secret, str):
            return None
        if len(client_id) > MAX_CREDENTIAL_LEN or len(client_secret) > MAX_CREDENTIAL_LEN:
            return None
        with self._db.transaction() as conn:
            row = conn.execute(
                select(*_APP_SELECT.selected_columns, apps.c.secret_hash).where(
                    apps.c.client_id == client_id
                )
            ).first()
        stored = row[-1] if row else _DUMMY_HASH
        ok = hmac.compare_digest(sha256_hex(client_secret), stored)
        return _app(tuple(row[:-1])) if (row and ok) else None


def _app(row: Row[Any] | tuple[Any, ...]) -> App:
    client_id, name, user_id, created, disabled = tuple(row)
    return App(
        client_id=client_id,
        name=name,
        user_id=user_id,
        created=datetime.fromtimestamp(created, UTC),
        disabled=bool(disabled),
    )
