"""Name constraints of a local CA: which names the certificates it signs may carry (RFC 5280 4.2.1.10).

A team that trusts a local CA trusts it for every name unless the CA says otherwise: a stolen CA key
could then impersonate any site to every teammate. A constrained CA (``tlskit ca init --permit-dns
example.test``) is refused for other names by every verifier that honours the critical extension
(OpenSSL, browsers, Go, cryptography), and :meth:`NameConstraintsSpec.check` refuses them before
signing.

DNS constraints follow RFC 5280: ``example.test`` covers that name and every name under it. The
leading-dot spelling (``.example.test``) that OpenSSL configuration files use is accepted as the same
constraint, since cryptography's verifier refuses a dNSName constraint that starts with a dot.

Example::

    spec = NameConstraintsSpec.parse(permit_dns=["example.test"], permit_ip=["10.0.0.0/8"])
    spec.check([x509.DNSName("api.example.test")])     # passes
    spec.check([x509.DNSName("example.com")])          # InputError
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tlskit.errors import InputError, option

if TYPE_CHECKING:
    from cryptography import x509

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class NameConstraintsSpec:
    """Permitted and excluded subtrees by kind; an empty kind in ``permitted_*`` leaves that kind free."""

    permitted_dns: tuple[str, ...] = ()
    excluded_dns: tuple[str, ...] = ()
    permitted_ip: tuple[Network, ...] = ()
    excluded_ip: tuple[Network, ...] = ()
    permitted_email: tuple[str, ...] = ()
    excluded_email: tuple[str, ...] = ()

    @classmethod
    def parse(cls, *, permit_dns: Iterable[str] = (), exclude_dns: Iterable[str] = (),
              permit_ip: Iterable[str] = (), exclude_ip: Iterable[str] = (),
              permit_email: Iterable[str] = (), exclude_email: Iterable[str] = ()) -> NameConstraintsSpec:
        """The ``--permit-*``/``--exclude-*`` flags of `tlskit ca init`, each value checked."""
        return cls(tuple(_domain(v, option("permit_dns")) for v in permit_dns),
                   tuple(_domain(v, option("exclude_dns")) for v in exclude_dns),
                   tuple(_network(v, option("permit_ip")) for v in permit_ip),
                   tuple(_network(v, option("exclude_ip")) for v in exclude_ip),
                   tuple(_mail_domain(v, option("permit_email")) for v in permit_email),
                   tuple(_mail_domain(v, option("exclude_email")) for v in exclude_email))

    @classmethod
    def of(cls, certificate: x509.Certificate) -> NameConstraintsSpec | None:
        """The constraints a CA certificate carries, or None."""
        from cryptography import x509

        try:
            value = certificate.extensions.get_extension_for_class(x509.NameConstraints).value
        except x509.ExtensionNotFound:
            return None
        return cls.from_extension(value)

    @classmethod
    def from_extension(cls, value: x509.NameConstraints) -> NameConstraintsSpec:
        from cryptography import x509

        permitted, excluded = value.permitted_subtrees or [], value.excluded_subtrees or []
        return cls(_values(permitted, x509.DNSName), _values(excluded, x509.DNSName),
                   _values(permitted, x509.IPAddress), _values(excluded, x509.IPAddress),
                   _values(permitted, x509.RFC822Name), _values(excluded, x509.RFC822Name))

    def __bool__(self) -> bool:
        return any((self.permitted_dns, self.excluded_dns, self.permitted_ip, self.excluded_ip,
                    self.permitted_email, self.excluded_email))

    def extension(self) -> x509.NameConstraints:
        from cryptography import x509

        permitted = ([x509.DNSName(d) for d in self.permitted_dns] + [x509.IPAddress(n) for n in self.permitted_ip]
                     + [x509.RFC822Name(e) for e in self.permitted_email])
        excluded = ([x509.DNSName(d) for d in self.excluded_dns] + [x509.IPAddress(n) for n in self.excluded_ip]
                    + [x509.RFC822Name(e) for e in self.excluded_email])
        return x509.NameConstraints(permitted_subtrees=permitted or None, excluded_subtrees=excluded or None)

    def describe(self) -> list[str]:
        """``permitted DNS:example.test``-style lines, for text output."""
        lines = []
        for verb, values in (("permitted", self.permitted_dns), ("excluded", self.excluded_dns)):
            lines += [f"{verb} DNS:{v}" for v in values]
        for verb, values in (("permitted", self.permitted_ip), ("excluded", self.excluded_ip)):
            lines += [f"{verb} IP:{v}" for v in values]
        for verb, values in (("permitted", self.permitted_email), ("excluded", self.excluded_email)):
            lines += [f"{verb} email:{v}" for v in values]
        return lines

    def violation(self, name: x509.GeneralName) -> str | None:
        """Why ``name`` is outside the constraints, or None when it is inside."""
        from cryptography import x509

        if isinstance(name, x509.DNSName):
            value = name.value.lower().removeprefix("*.")
            permitted, excluded, matches = self.permitted_dns, self.excluded_dns, _dns_within
        elif isinstance(name, x509.IPAddress):
            value = name.value
            permitted, excluded, matches = self.permitted_ip, self.excluded_ip, _ip_within
        elif isinstance(name, x509.RFC822Name):
            value = name.value.lower()
            permitted, excluded, matches = self.permitted_email, self.excluded_email, _email_within
        else:
            # A URI's host is constrained by URI subtrees, which `ca init` does not write: refuse it
            # under a constrained CA rather than sign a name nothing was said about.
            return "the CA's name constraints say nothing about this kind of name" if self else None
        for subtree in excluded:
            if matches(value, subtree):
                return f"excluded by {subtree}"
        if permitted and not any(matches(value, subtree) for subtree in permitted):
            return f"not within {', '.join(str(p) for p in permitted)}"
        return None

    def check(self, names: Iterable[x509.GeneralName], ca_label: str = "the CA") -> None:
        """Refuse names outside the constraints, as every verifier would refuse the certificate later."""
        from tlskit.names import san_to_text

        for name in names:
            why = self.violation(name)
            if why is not None:
                raise InputError(f"{san_to_text(name)} is outside the name constraints of {ca_label}", why,
                                 "sign it with a CA whose constraints permit it, or change the request's names")


def _values(subtrees, kind) -> tuple:
    return tuple(subtree.value for subtree in subtrees if isinstance(subtree, kind))


def _domain(value: str, flag: str) -> str:
    from tlskit.names import dns_name

    text = value.strip().lstrip(".")
    if not text or text.startswith("*"):
        raise InputError(f"{flag} {value!r} is not a domain", fix=f"write e.g. {flag} example.test")
    try:
        return dns_name(text)
    except InputError:
        raise InputError(f"{flag} {value!r} is not a domain", fix=f"write e.g. {flag} example.test") from None


def _network(value: str, flag: str) -> Network:
    try:
        return ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        raise InputError(f"{flag} {value!r} is not a network", str(exc), f"write e.g. {flag} 10.0.0.0/8") from None


def _mail_domain(value: str, flag: str) -> str:
    # RFC 5280: "example.test" is every mailbox at that host, ".example.test" every host under it,
    # "user@example.test" one mailbox.
    text = value.strip()
    host = text.rpartition("@")[2].lstrip(".")
    try:
        _domain(host, flag)
    except InputError:
        raise InputError(f"{flag} {value!r} is not a mail domain or address",
                         fix=f"write e.g. {flag} example.test") from None
    return text.lower()


def _dns_within(name: str, subtree: str) -> bool:
    subtree = subtree.lower().lstrip(".")
    return name == subtree or name.endswith("." + subtree)


def _ip_within(address, subtree: Network) -> bool:
    if isinstance(address, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return address.version == subtree.version and address.subnet_of(subtree)
    return address.version == subtree.version and address in subtree


def _email_within(mailbox: str, subtree: str) -> bool:
    subtree = subtree.lower()
    host = mailbox.rpartition("@")[2]
    if "@" in subtree:
        return mailbox == subtree
    if subtree.startswith("."):
        return host.endswith(subtree)
    return host == subtree
