"""Host header values: what a host name, an IP literal and a port look like (RFC 9110 7.2, RFC 3986 3.2.2).

One parser for every place that reads Host: the HTTP engine (a malformed Host is a 400, RFC 9112 3.2),
the redirect listener (which builds ``Location`` from it) and the reverse proxy (which forwards it as
``X-Forwarded-Host``). Names are DNS-like labels (letters, digits, ``-`` and ``_``); anything that
could end a URL authority early (``@ / ? # \\``, spaces, non-ASCII) makes the value malformed.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


@dataclass(frozen=True)
class Host:
    name: str                  # lower-case name, or the address (IPv6 without brackets)
    port: int | None
    is_ip: bool

    def authority(self, port: int | None) -> str:
        """``name[:port]`` for a URL, with brackets around an IPv6 address; no port when it is None."""
        name = f"[{self.name}]" if ":" in self.name else self.name
        return name if port is None else f"{name}:{port}"


_CACHE: dict[bytes | str, Host | None] = {}
_CACHE_SIZE = 4096


def parse_host(value: bytes | str) -> Host | None:
    """A Host field value, or None when it is not a host name or IP literal with an optional port.

    Every request carries one, and clients send the same few values: answers are cached.
    """
    try:
        return _CACHE[value]
    except KeyError:
        pass
    parsed = _parse_host(value)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.clear()
    _CACHE[value] = parsed
    return parsed


def _parse_host(value: bytes | str) -> Host | None:
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not value or len(value) > 270 or not value.isascii():
        return None
    port: int | None = None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        literal, rest = value[1:end], value[end + 1:]
        try:
            address = ipaddress.IPv6Address(literal)
        except ValueError:
            return None
        name, is_ip = str(address), True
    else:
        literal, colon, rest = value.partition(":")
        rest = colon + rest
        name, is_ip = literal.lower(), False
        try:
            name, is_ip = str(ipaddress.IPv4Address(literal)), True
        except ValueError:
            labels = name[:-1].split(".") if name.endswith(".") else name.split(".")
            if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
                return None
    if rest:
        digits = rest[1:]
        if not rest.startswith(":") or not digits.isdigit() or len(digits) > 5 or not 0 < int(digits) < 65536:
            return None
        port = int(digits)
    return Host(name, port, is_ip)


def name_matches(name: str, patterns: frozenset[str]) -> bool:
    """``name`` is one of ``patterns`` or covered by one of its ``*.`` wildcards (one label, as TLS does)."""
    if name in patterns:
        return True
    head, dot, parent = name.partition(".")
    return bool(dot) and f"*.{parent}" in patterns
