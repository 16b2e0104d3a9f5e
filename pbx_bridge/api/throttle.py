"""Throttling of failed client authentication at the OAuth endpoints.

Failures are counted per client id and per source address. After ``failures_per_client``
(``failures_per_address``) failures, the key is locked out for 1 s, and each further
failure doubles the lockout, up to ``lockout_max`` seconds. While a key is locked out,
requests for it are refused (429) before the secret is looked at, so a guesser gets about
one guess per lockout period, instead of one per request (thousands a second).

Memory is bounded: each table holds at most ``throttle_entries`` keys, ordered by their
last failure; an entry is forgotten ``2 * lockout_max`` after its last failure (its lockout
is over by then), and when a table is full the entry whose last failure is oldest goes
first. An attacker spraying client ids or addresses so fast that entries are evicted early
still gets at most ``failures_per_*`` guesses per key per ``throttle_entries`` requests.

IPv6 addresses are counted per /64 (the block a single host usually gets), so that a host
cannot pick a fresh address of its own block for every request.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from pbx_bridge.config import AuthSettings

__all__ = ["MAX_KEY_LEN", "FailedAuthThrottle", "Lockout", "address_key"]

# Keys are cut to this length, so that an entry's size is bounded whatever a client sends.
MAX_KEY_LEN = 128


@dataclass
class _Entry:
    failures: int = 0
    last_failure: float = 0.0
    locked_until: float = 0.0


@dataclass(frozen=True)
class Lockout:
    """A lockout that a failure has just started (for the log)."""

    kind: str  # "client" or "address"
    key: str
    failures: int
    seconds: float


class _Table:
    """Failure counts of one kind of key, least recently failed first."""

    def __init__(self, kind: str, limit: int, lockout_max: float, capacity: int) -> None:
        self.kind = kind
        self._limit = limit
        self._lockout_max = lockout_max
        self._forget_after = 2 * lockout_max
        self._capacity = capacity
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries:
            entry = next(iter(entries.values()))
            if now - entry.last_failure < self._forget_after:
                break
            entries.popitem(last=False)

    def retry_after(self, key: str, now: float) -> float:
        self._expire(now)
        entry = self._entries.get(key)
        return max(0.0, entry.locked_until - now) if entry is not None else 0.0

    def fail(self, key: str, now: float) -> Lockout | None:
        self._expire(now)
        entry = self._entries.pop(key, None)
        if entry is None:
            entry = _Entry()
            while len(self._entries) >= self._capacity:
                self._entries.popitem(last=False)
        self._entries[key] = entry  # now the most recent
        entry.failures += 1
        entry.last_failure = now
        if entry.failures < self._limit:
            return None
        seconds = min(self._lockout_max, 2.0 ** (entry.failures - self._limit))
        entry.locked_until = now + seconds
        return Lockout(self.kind, key, entry.failures, seconds)

    def clear(self, key: str) -> None:
        self._entries.pop(key, None)


def address_key(remote: str | None) -> str:
    """The key a source address is counted under: IPv4 as is, IPv6 by its /64."""
    if not remote:
        return "-"
    try:
        ip = ipaddress.ip_address(remote)
    except ValueError:
        return remote[:MAX_KEY_LEN]  # not an IP (a Unix socket): one key for it all
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class FailedAuthThrottle:
    """Per client id and per source address failure counts, with growing lockouts."""

    def __init__(self, settings: AuthSettings, clock: Callable[[], float] = time.monotonic):
        self.clock = clock  # public: tests and the bench move time on
        self.clients = _Table(
            "client", settings.failures_per_client, settings.lockout_max, settings.throttle_entries
        )
        self.addresses = _Table(
            "address",
            settings.failures_per_address,
            settings.lockout_max,
            settings.throttle_entries,
        )

    def retry_after(self, client_id: str | None, remote: str | None) -> int:
        """Whole seconds until this client id and this address may try again (0: now)."""
        now = self.clock()
        wait = self.addresses.retry_after(address_key(remote), now)
        if client_id:
            wait = max(wait, self.clients.retry_after(client_id[:MAX_KEY_LEN], now))
        return math.ceil(wait)

    def failed(self, client_id: str | None, remote: str | None) -> list[Lockout]:
        """Count a failure; returns the lockouts it started (none, or one per table)."""
        now = self.clock()
        started = [self.addresses.fail(address_key(remote), now)]
        if client_id:
            started.append(self.clients.fail(client_id[:MAX_KEY_LEN], now))
        return [lock for lock in started if lock is not None]

    def succeeded(self, client_id: str) -> None:
        """The client id's own count starts again. The address's does not: an attacker
        with one app of its own must not reset its address by using it between guesses."""
        self.clients.clear(client_id[:MAX_KEY_LEN])
