"""Where to connect: HOST, HOST:PORT, [IPv6]:PORT, a bare IPv6 address or an https:// URL."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from tlskit.errors import InputError

DEFAULT_PORT = 443


@dataclass(frozen=True)
class Target:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_target(text: str, default_port: int = DEFAULT_PORT) -> Target:
    """HOST, HOST:PORT, [IPv6]:PORT, a bare IPv6 address, or an https:// URL.

    >>> parse_target("[::1]:8443")
    Target(host='::1', port=8443)
    """
    raw = text.strip()
    if not raw:
        raise InputError("no host given", fix="pass HOST or HOST:PORT, e.g. example.com:443")
    if "://" in raw:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(raw)
        except ValueError as exc:  # e.g. an unbalanced "[" in the host
            raise InputError(f"{text!r} is not a valid URL ({exc})", fix="pass HOST:PORT or https://HOST:PORT/") from None
        if not parts.hostname:
            raise InputError(f"{text!r} has no host", fix="pass HOST or HOST:PORT")
        try:
            port = parts.port
        except ValueError:
            raise InputError(f"{text!r} has a bad port", fix="use a port from 1 to 65535") from None
        schemes = {"https": 443, "smtps": 465, "imaps": 993, "pop3s": 995, "ldaps": 636}
        return Target(parts.hostname, port or schemes.get(parts.scheme, default_port))
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0:
            raise InputError(f"{text!r} is missing its closing ']'", fix="write IPv6 as [::1]:443")
        host, rest = raw[1:end], raw[end + 1:]
        if ip_or_none(host) is None or ":" not in host:
            raise InputError(f"{host!r} in brackets is not an IPv6 address", fix="write IPv6 as [::1]:443")
        if rest and not rest.startswith(":"):
            raise InputError(f"unexpected {rest!r} after ']'", fix="write IPv6 as [::1]:443")
        port_text = rest[1:] if rest else None
    elif raw.count(":") > 1:
        # More than one colon without brackets can only be a bare IPv6 address (no port).
        if ip_or_none(raw) is None:
            raise InputError(f"{text!r} is not a host, HOST:PORT or IPv6 address", fix="write IPv6 as [::1]:443")
        host, port_text = raw, None
    else:
        host, _, port_text = raw.partition(":")
        port_text = port_text if ":" in raw else None
    if not host:
        raise InputError(f"{text!r} has no host", fix="pass HOST or HOST:PORT")
    if any(c.isspace() or c in "/@?#" for c in host):
        raise InputError(f"{host!r} is not a host name", fix="pass HOST or HOST:PORT, e.g. example.com:443")
    return Target(host, _parse_port(port_text, text) if port_text is not None else default_port)


def _parse_port(port_text: str, text: str) -> int:
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise InputError(f"bad port {port_text!r} in {text!r}", fix="use a port from 1 to 65535")
    return int(port_text)


def ip_or_none(host: str):
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None
