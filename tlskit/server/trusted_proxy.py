"""`--trust-proxy CIDR`: the real client IP when tlskit serve runs behind a load balancer or proxy.

X-Forwarded-For is a list any client can write into, so it is believed only as far as it was written
by proxies we trust. The rule (the "rightmost untrusted" algorithm, as nginx's ``real_ip_recursive on``):

1. If the TCP peer is not a trusted proxy, the peer *is* the client. The header is ignored.
2. Otherwise walk X-Forwarded-For from right to left, skipping addresses of trusted proxies; the first
   address that is not trusted is the client (everything left of it was written by the client itself).
3. If every address is trusted, the leftmost one is the client. A malformed entry stops the walk: the
   nearest trusted hop to its right is the best address we can vouch for.

Without ``--trust-proxy`` nothing here runs and the header is never believed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tlskit.errors import InputError, option

__all__ = ["TrustedProxies", "TrustedProxyMiddleware", "address_key", "parse_networks"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(values: Iterable[str], setting: str = "trust_proxy",
                   why: str = "expected an IP address or CIDR such as 10.0.0.0/8",
                   fix: str = "for example 127.0.0.1/32") -> tuple[Network, ...]:
    """``["10.0.0.0/8", "127.0.0.1", "::1"]`` -> networks; a bare address means that one host.

    Each value may also be a comma-separated list. Shared by ``--trust-proxy`` and ``--allow``
    (``setting``, ``why`` and ``fix`` word the error for the option being parsed).
    """
    networks = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise InputError(f"bad {option(setting)} {part!r}", why, fix) from None
    return tuple(networks)


def parse_address(text: str) -> Address | None:
    """An address as proxies write it: ``1.2.3.4``, ``1.2.3.4:5678``, ``[2001:db8::1]:443``, ``2001:db8::1``."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text, bracket, port = text[1:].partition("]")
        if not bracket or port and not (port[0] == ":" and port[1:].isdigit()):
            return None
    elif text.count(":") == 1:  # IPv4 with a port; bare IPv6 has several colons
        text = text.partition(":")[0]
    try:
        # A zone (fe80::1%eth0) names the proxy's interface, not a different client.
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    return address.ipv4_mapped or address if isinstance(address, ipaddress.IPv6Address) else address


def address_key(ip: str) -> str:
    """What per-address limits (pending connections, password checks) count by: the IPv4 address, or
    the /64 of an IPv6 one (the block one host usually gets, so it cannot dodge them by changing address)."""
    if ":" not in ip:
        return ip
    try:
        address = ipaddress.IPv6Address(ip)
    except ValueError:
        return ip
    if address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return f"{ipaddress.IPv6Network((address, 64), strict=False).network_address}/64"


@dataclass(frozen=True)
class TrustedProxies:
    networks: tuple[Network, ...]

    @classmethod
    def parse(cls, values: Iterable[str]) -> TrustedProxies:
        return cls(parse_networks(values))

    def trusts(self, address: Address | str | None) -> bool:
        if isinstance(address, str):
            address = parse_address(address)
        if address is None:
            return False
        # An address is never in a network of the other IP version (ipaddress answers False).
        return any(address in net for net in self.networks)

    def client_ip(self, peer: str, forwarded_for: Iterable[str]) -> str:
        """The client's IP for a connection from ``peer`` carrying these X-Forwarded-For header values."""
        peer_address = parse_address(peer)
        if peer_address is None or not self.trusts(peer_address):
            return peer
        hops = [item for value in forwarded_for for item in value.split(",")]
        nearest = str(peer_address)
        for item in reversed(hops):
            address = parse_address(item)
            if address is None:
                return nearest
            if not self.trusts(address):
                return str(address)
            nearest = str(address)
        return nearest


class TrustedProxyMiddleware:
    """ASGI middleware, outermost: replaces ``scope["client"]`` with the real client when the peer is trusted.

    Everything after it (the --allow check, the access log, limits, X-Forwarded-For to an upstream) then
    sees the real client. The peer that forwarded the request is kept in ``scope["tlskit.forwarded_by"]``.
    """

    def __init__(self, app, proxies: TrustedProxies) -> None:
        self.app = app
        self.proxies = proxies

    async def aclose(self) -> None:
        closer = getattr(self.app, "aclose", None)
        if closer is not None:
            await closer()

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        if scope["type"] == "http" and scope.get("client"):
            peer_host, peer_port = scope["client"]
            if self.proxies.trusts(peer_host):
                values = [v.decode("latin-1") for n, v in scope["headers"] if n.lower() == b"x-forwarded-for"]
                if values:
                    client = self.proxies.client_ip(peer_host, values)
                    scope = dict(scope)
                    scope["tlskit.forwarded_by"] = peer_host
                    scope["client"] = (client, 0 if client != peer_host else peer_port)
        await self.app(scope, receive, send)
