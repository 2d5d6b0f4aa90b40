"""What an ACME certificate can name: DNS names (RFC 8555) and IP addresses (RFC 8738), and the CSR for them.

Names are kept as text everywhere (``renewal.json``, ``--name``): a DNS name lower-case and in its
ASCII (IDNA) form, an IP address in its compressed form (``2001:db8::1``). An IP address can be proved
with http-01 or tls-alpn-01, never dns-01 (RFC 8738 section 7), and a wildcard only with dns-01.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tlskit.errors import InputError

if TYPE_CHECKING:
    from cryptography import x509

_DNS = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_CN_MAX = 64  # RFC 5280 ub-common-name


def ip_or_none(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return None


def is_ip(name: str) -> bool:
    return ip_or_none(name) is not None


def normalize_names(names: Sequence[str]) -> list[str]:
    """Lower-case, no trailing dot, no duplicates, order kept; wildcards only as the leftmost label.

    >>> normalize_names(["Example.COM.", "192.0.2.10", "2001:DB8:0::1"])
    ['example.com', '192.0.2.10', '2001:db8::1']
    """
    result: list[str] = []
    for raw in names:
        name = _one_name(raw)
        if name not in result:
            result.append(name)
    if not result:
        raise InputError("no names given", fix="name at least one: tlskit acme issue example.com ...")
    return result


def _one_name(raw: str) -> str:
    address = ip_or_none(raw.strip())
    if address is not None:
        if address.is_unspecified or address.is_multicast:
            raise InputError(f"{raw!r} is not an address a CA can reach", fix="give the server's own address")
        return address.compressed
    name = raw.strip().rstrip(".").lower()
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise InputError(f"{raw!r} is not a DNS name an ACME CA issues for", "IDNA encoding failed",
                             "check the spelling") from None
    if not _DNS.match(name) or len(name) > 253:
        raise InputError(f"{raw!r} is not a DNS name an ACME CA issues for",
                         "letters, digits, '-' and dots; '*.' only in front", "check the spelling")
    if re.fullmatch(r"[0-9.]+", name):
        raise InputError(f"{raw!r} is neither a DNS name nor an IP address", fix="check the spelling")
    return name


def check_challenge(names: Sequence[str], challenge_type: str) -> None:
    """Refuse, before any order, the names the chosen challenge cannot prove."""
    from tlskit.acme.challenges import DNS01

    if challenge_type == DNS01:
        addresses = [n for n in names if is_ip(n)]
        if addresses:
            raise InputError(f"{addresses[0]} is an IP address, which dns-01 cannot prove (RFC 8738)",
                             fix="answer http-01 or tls-alpn-01 for it")
        return
    wildcards = [n for n in names if n.startswith("*.")]
    if wildcards:
        raise InputError(f"{wildcards[0]} is a wildcard, which only dns-01 can prove",
                         fix="answer dns-01 through a hook command that sets the TXT record")


def general_names(names: Sequence[str]) -> list[x509.GeneralName]:
    from cryptography import x509

    return [x509.IPAddress(address) if (address := ip_or_none(n)) else x509.DNSName(n) for n in names]


def request_for(key, names: Sequence[str]) -> x509.CertificateSigningRequest:
    """The CSR an ACME order finalizes with: every name in the SANs, the first DNS name as CN.

    The CN is optional for ACME CAs; it stays for old tools when it fits 64 characters. An IP address
    is never a CN: RFC 8738 CAs put it only in the SANs (and Let's Encrypt refuses one in the CN).
    """
    from tlskit.csr import build_csr

    first = names[0]
    subject = {"CN": first} if not is_ip(first) and len(first) <= _CN_MAX else {}
    return build_csr(key, subject, general_names(names))


def names_in_request(request: x509.CertificateSigningRequest) -> list[str]:
    """The DNS names and IP addresses a CSR asks for (its CN when it has no SANs), normalized."""
    from cryptography import x509

    from tlskit.csr import csr_sans
    from tlskit.names import common_name

    sans = csr_sans(request)
    found = [n.value for n in sans if isinstance(n, x509.DNSName)]
    found += [str(n.value) for n in sans if isinstance(n, x509.IPAddress)]
    if not found and (cn := common_name(request.subject)):
        found = [cn]
    return normalize_names(found) if found else []


__all__ = ["normalize_names", "check_challenge", "request_for", "names_in_request", "is_ip", "ip_or_none",
           "general_names"]
