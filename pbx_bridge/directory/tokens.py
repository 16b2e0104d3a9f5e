"""Bearer tokens: issued to apps, authenticated on every API request, listed and revoked.

A token is never stored, only its SHA-256 hex digest; its public name is a prefix of that
digest (:func:`token_id`). The tokens seen are kept in memory as a bounded map of token
hash -> (expiry, principal), dropped whenever the stored directory changed. Authentication
checks for that strictly (:class:`~pbx_bridge.directory.db.ChangeCheck`), so a
revocation from another process (``token revoke`` while the service runs) is honoured on
the very next request.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, and_, delete, insert, select

from pbx_bridge.directory.apps import MAX_CREDENTIAL_LEN, sha256_hex
from pbx_bridge.directory.db import DirectoryDb, DirectoryError
from pbx_bridge.directory.models import Principal, TokenInfo
from pbx_bridge.storage.schema import apps, tokens, users

__all__ = ["TOKEN_ID_LEN", "Tokens", "token_id"]

# Tokens remembered at most by the authentication cache (least recently used go first).
_TOKEN_CACHE_SIZE = 10_000
# A token's public name: this many hex digits of its SHA-256 (48 bits: unique in any
# real table, and `token revoke` refuses an ambiguous one anyway).
TOKEN_ID_LEN = 12
# `token revoke ID` takes a prefix of an id, at least this long.
_MIN_TOKEN_ID_PREFIX = 6
_HEX = frozenset("0123456789abcdef")

_TOKEN_SELECT = select(
    tokens.c.token_hash,
    tokens.c.client_id,
    apps.c.name,
    apps.c.user_id,
    tokens.c.created,
    tokens.c.expires_at,
).select_from(tokens.join(apps))


def token_id(token: str) -> str:
    """The id under which a token is listed and logged (never the token itself)."""
    return sha256_hex(token)[:TOKEN_ID_LEN]


class Tokens:
    """Issuing, authenticating, listing and revoking bearer tokens."""

    def __init__(
        self, db: DirectoryDb, *, token_ttl: int, max_token_ttl: int, clock: Callable[[], float]
    ) -> None:
        if token_ttl <= 0 or max_token_ttl <= 0:
            raise ValueError("token TTLs must be positive")
        self._db = db
        self._clock = clock
        self.token_ttl = min(token_ttl, max_token_ttl)
        self.max_token_ttl = max_token_ttl
        self._changes = db.change_check()
        self._seen: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    def issue_token(self, client_id: str, ttl: int | None = None) -> tuple[str, datetime]:
        """A new bearer token for an app. ``ttl`` (seconds) defaults to ``token_ttl`` and
        is capped at ``max_token_ttl``. Returns ``(token, expires_at)`` (UTC). Only the
        token's SHA-256 is stored."""
        if ttl is None:
            ttl = self.token_ttl
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
            raise DirectoryError(f"token TTL must be a positive number of seconds, not {ttl!r}")
        ttl = min(ttl, self.max_token_ttl)
        token = secrets.token_urlsafe(32)
        now = self._clock()
        expires = now + ttl
        # A new token makes no cache wrong (unknown tokens are never cached): no bump.
        with self._db.transaction(write=True) as conn:
            known = conn.execute(
                select(apps.c.disabled).where(apps.c.client_id == client_id)
            ).first()
            if known is None:
                raise DirectoryError(f"no app with client id {client_id!r}")
            if known[0]:
                raise DirectoryError(
                    f"app {client_id!r} is disabled (pbx-bridge app enable --app ID)"
                )
            conn.execute(
                insert(tokens).values(
                    token_hash=sha256_hex(token),
                    client_id=client_id,
                    created=now,
                    expires_at=expires,
                )
            )
        return token, datetime.fromtimestamp(expires, UTC)

    def authenticate(self, token: str) -> Principal | None:
        """The principal a bearer token stands for; None if unknown, expired or malformed.

        The lookup is by SHA-256 of the token, so no comparison ever runs on the secret.
        A known token is answered from memory after a strict change check (see the module
        docstring); an unknown one always asks the database (and is not remembered, so
        guessing cannot fill the memory)."""
        if not isinstance(token, str) or not token or len(token) > MAX_CREDENTIAL_LEN:
            return None
        token_hash = sha256_hex(token)
        with self._db.lock:
            if self._changes.changed(strict=True):
                self._seen.clear()
            hit = self._seen.get(token_hash)
            if hit is not None:
                self._seen.move_to_end(token_hash)
            else:
                hit = self._load_token(token_hash)
                if hit is None:
                    return None
                self._seen[token_hash] = hit
                if len(self._seen) > _TOKEN_CACHE_SIZE:
                    self._seen.popitem(last=False)
        expires_at, principal = hit
        if expires_at <= self._clock():
            return None
        return principal

    def _load_token(self, token_hash: str) -> tuple[float, Principal] | None:
        with self._db.transaction() as conn:
            row = conn.execute(
                select(
                    tokens.c.expires_at,
                    apps.c.client_id,
                    users.c.id,
                    users.c.role,
                    users.c.organization,
                )
                .select_from(tokens.join(apps).join(users, users.c.id == apps.c.user_id))
                .where(and_(tokens.c.token_hash == token_hash, apps.c.disabled == 0))
            ).first()
        if row is None:
            return None
        values: tuple[Any, ...] = tuple(row)
        expires_at, client_id, user_id, role, organization = values
        principal = Principal(
            user_id=user_id,
            role=role,
            organization_id=None if role == "admin" else organization,
            client_id=client_id,
        )
        return float(expires_at), principal

    def revoke_token(self, token: str, *, client_id: str | None = None) -> bool:
        """Forget a token. True if it existed. With ``client_id``, only a token of that
        app is revoked (RFC 7009: a client revokes its own tokens, never another's)."""
        if not isinstance(token, str) or len(token) > MAX_CREDENTIAL_LEN:
            return False
        stmt = delete(tokens).where(tokens.c.token_hash == sha256_hex(token))
        if client_id is not None:
            stmt = stmt.where(tokens.c.client_id == client_id)
        with self._db.transaction(write=True, invalidates=True) as conn:
            return conn.execute(stmt).rowcount > 0

    def revoke_token_id(self, token_id_prefix: str) -> TokenInfo:
        """Revoke the one token whose id (see :func:`token_id`) begins with this prefix
        (at least 6 hex digits); returns what it was. Refuses an unknown or ambiguous id."""
        prefix = token_id_prefix.strip().lower()
        if not (_MIN_TOKEN_ID_PREFIX <= len(prefix) <= 64 and set(prefix) <= _HEX):
            raise DirectoryError(
                f"a token id is {_MIN_TOKEN_ID_PREFIX} to {TOKEN_ID_LEN} hex digits, as "
                "`pbx-bridge token list` shows it (to revoke by the token itself, pipe it "
                "to `pbx-bridge token revoke --token-stdin`)"
            )
        with self._db.transaction(write=True, invalidates=True) as conn:
            # A range on the primary key: the index finds the prefix, no table scan.
            rows = conn.execute(
                _TOKEN_SELECT.where(
                    and_(tokens.c.token_hash >= prefix, tokens.c.token_hash < prefix + "g")
                ).limit(2)
            ).all()
            if not rows:
                raise DirectoryError(f"no token with id {prefix!r}")
            if len(rows) > 1:
                raise DirectoryError(f"token id {prefix!r} is ambiguous: give more digits")
            conn.execute(delete(tokens).where(tokens.c.token_hash == rows[0][0]))
        return _token_info(rows[0])

    def revoke_app_tokens(self, client_id: str) -> int:
        """Revoke every token of an app; returns how many."""
        with self._db.transaction(write=True, invalidates=True) as conn:
            known = conn.execute(select(apps.c.client_id).where(apps.c.client_id == client_id))
            if known.first() is None:
                raise DirectoryError(f"no app with client id {client_id!r}")
            return conn.execute(delete(tokens).where(tokens.c.client_id == client_id)).rowcount

    def list_tokens(self, client_id: str | None = None) -> list[TokenInfo]:
        """The tokens not yet expired (of one app, or of all), oldest first."""
        stmt = _TOKEN_SELECT.where(tokens.c.expires_at > self._clock())
        if client_id is not None:
            stmt = stmt.where(tokens.c.client_id == client_id)
        with self._db.transaction() as conn:
            rows = conn.execute(stmt.order_by(tokens.c.created, tokens.c.token_hash)).all()
        return [_token_info(r) for r in rows]

    def purge_expired(self) -> int:
        """Delete expired tokens; returns how many. (No cache goes wrong: a remembered
        token's expiry is checked on every use.)"""
        with self._db.transaction(write=True) as conn:
            cur = conn.execute(delete(tokens).where(tokens.c.expires_at <= self._clock()))
        return cur.rowcount


def _token_info(row: Row[Any] | tuple[Any, ...]) -> TokenInfo:
    token_hash, client_id, app_name, user_id, created, expires_at = tuple(row)
    return TokenInfo(
        id=token_hash[:TOKEN_ID_LEN],
        client_id=client_id,
        app_name=app_name,
        user_id=user_id,
        issued=datetime.fromtimestamp(created, UTC),
        expires=datetime.fromtimestamp(expires_at, UTC),
    )
