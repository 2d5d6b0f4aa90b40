"""The one rule for the host name a leaf is verified for, shared by `chain --host` and `probe`.

A name is accepted when a certificate could be valid for it: an IP address, or a DNS name of LDH labels
(RFC 1123: letters, digits, inner hyphens, 1-63 each, 253 in all) whose IDN labels are genuine A-labels.
Unicode input is converted with IDNA 2008 (UTS #46 mapping, as browsers do). What `cryptography`'s
verifier would refuse (``foo_bar.example.com``, ``a..b``, ``xn--zz--.example``) is refused here first,
as bad input with one line that says why, instead of an exception deep inside a verification.

Example::

    parse_host("Bücher.example").text      # 'xn--bcher-kva.example'
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tlskit.errors import InputError, option

if TYPE_CHECKING:
    from cryptography import x509

_LDH_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class HostName:
    """A host as certificates name it: ``text`` is the lower-case A-label form, or the IP address."""

    text: str
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None

    @property
    def general_name(self) -> x509.GeneralName:
        from cryptography import x509

        return x509.IPAddress(self.ip) if self.ip is not None else x509.DNSName(self.text)

    def __str__(self) -> str:
        return self.text


def parse_host(text: str, what: str | None = None) -> HostName:
    """``text`` as the name to verify; InputError (exit 2) naming ``what`` when no certificate can match it."""
    raw = text.strip()
    try:
        return HostName(str(ipaddress.ip_address(raw)), ipaddress.ip_address(raw))
    except ValueError:
        pass
    why = _dns_name_fault(raw)
    if why is None:
        return HostName(_a_label_form(raw))
    if what is None:
        what = option("host")
    raise InputError(f"{what} {text!r} is not a host name a certificate can be valid for", why,
                     "give a DNS name such as www.example.com, or an IP address")


def _a_label_form(raw: str) -> str:
    name = raw[:-1] if raw.endswith(".") else raw
    if not name.isascii():
        import idna

        name = idna.encode(name, uts46=True).decode("ascii")
    return name.lower()


def _dns_name_fault(raw: str) -> str | None:
    if not raw or raw == ".":
        return "it is empty"
    name = raw[:-1] if raw.endswith(".") else raw  # an absolute name ends with the root's empty label
    if not name.isascii():
        import idna

        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            return f"not a valid internationalized name: {exc}"
    name = name.lower()
    if len(name) > 253:
        return "longer than 253 characters"
    labels = name.split(".")
    for label in labels:
        if not label:
            return "it has an empty label (two dots in a row, or a leading dot)"
        if "_" in label:
            return f"the label {label!r} has an underscore, which host names cannot carry (RFC 1123; CA/B BR 7.1.2.7.12)"
        if len(label) > 63:
            return f"the label {label[:20]!r}... is longer than 63 characters"
        if not _LDH_LABEL.match(label):
            return f"the label {label!r} is not letters, digits and inner hyphens"
        if label[2:4] == "--" and not _is_a_label(label):
            return f"the label {label!r} is not a valid IDNA A-label"
    if labels[-1].isdigit():
        return "its last label is all digits (an IPv4 address in a short form?)"
    return None


def _is_a_label(label: str) -> bool:
    """``xn--`` followed by punycode that decodes to a valid U-label and encodes back to the same text."""
    if not label.startswith("xn--"):
        return False  # "ab--cd": RFC 5891 4.2.3.1 reserves hyphens in positions 3 and 4 for A-labels
    import idna

    try:
        return idna.encode(idna.decode(label)).decode("ascii") == label
    except (idna.IDNAError, UnicodeError):
        return False


def leaf_matches(sans: list[x509.GeneralName], host: HostName) -> bool:
    """RFC 6125 matching against the SANs only (the CN is ignored, as browsers and cryptography do).

    A wildcard stands for exactly one whole left-most label: ``*.example.com`` matches
    ``a.example.com``, not ``example.com`` nor ``a.b.example.com``.
    """
    from cryptography import x509

    if host.ip is not None:
        return any(isinstance(n, x509.IPAddress) and n.value == host.ip for n in sans)
    for name in sans:
        if not isinstance(name, x509.DNSName):
            continue
        pattern = name.value.lower()
        if pattern == host.text:
            return True
        if pattern.startswith("*.") and "." in host.text:
            head, rest = host.text.split(".", 1)
            if head and rest == pattern[2:] and "*" not in rest:
                return True
    return False
