"""The SSRF guard: a webhook never reaches an address on loopback, link-local, private,
multicast, unspecified or reserved ranges unless ``[events] allow_networks`` holds it.

Checked when a subscription is saved (its host resolved) and again at every connection:
aiohttp resolves through `GuardedResolver`, which refuses the whole host when any of
its addresses is forbidden (so DNS rebinding between the check and the connection
gains nothing); an IP-literal host, which aiohttp does not resolve, is checked by
`check_literal`. Redirects are never followed (a 3xx is a failed attempt).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

__all__ = ["AddressRefused", "Guard", "GuardedResolver"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(OSError):
    """The receiver's address is on a range webhooks may not reach."""


class Guard:
    def __init__(self, allow: Iterable[str]) -> None:
        self.allow: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in allow
        )

    def refused(self, address: str) -> bool:
        try:
            ip: Address = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return True
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.allow):
            return False
        return bool(ip.is_loopback or ip.is_link_local or ip.is_private or ip.is_multicast
                    or ip.is_unspecified or ip.is_reserved)

    def check_literal(self, host: str) -> None:
        """An IP-literal host (aiohttp connects to it without resolving)."""
        try:
            ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
        except ValueError:
            return  # a name: the resolver checks it
        if self.refused(host.strip("[]")):
            raise AddressRefused(f"{host} is on a refused range")

    async def check_host(self, host: str, port: int) -> None:
        """Saving a subscription: every address the host has now must be allowed."""
        self.check_literal(host)
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise AddressRefused(f"{host} does not resolve") from exc
        for info in infos:
            if self.refused(str(info[4][0])):
                raise AddressRefused(f"{host} resolves to a refused range")


class GuardedResolver(AbstractResolver):
    def __init__(self, guard: Guard) -> None:
        self._guard = guard
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: Any = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if any(self._guard.refused(r["host"]) for r in found):
            raise AddressRefused(f"{host} resolves to a refused range")
        return found

    async def close(self) -> None:
        await self._inner.close()
