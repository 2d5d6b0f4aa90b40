"""RFC 5280 4.2.1.10 name constraints over a whole path, directoryName included.

`cryptography` checks DNS, IP and e-mail constraints against the SANs; it never applies a directoryName
constraint to the subject DN (the name the RFC says it constrains first) and refuses a path where a
directoryName SAN meets a permitted directoryName subtree ("not implemented"). Here every name form
that has a constraint is checked: the subject DN and directoryName SANs against directoryName subtrees,
DNS/IP/e-mail SANs as `cryptography` does, and a constrained form tlskit cannot evaluate (URI,
otherName...) is refused explicitly (OpenSSL's 51) rather than let through.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from tlskit.certificates import certificate_sans, is_self_issued
from tlskit.names import name_to_slash, san_to_text
from tlskit.verdict.problems import Problem

if TYPE_CHECKING:
    from cryptography import x509


def name_constraints(cert: x509.Certificate) -> x509.NameConstraints | None:
    from cryptography import x509

    try:
        return cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except (x509.ExtensionNotFound, x509.DuplicateExtension, ValueError):
        return None


def has_directory_constraints(cert: x509.Certificate) -> bool:
    from cryptography import x509

    constraints = name_constraints(cert)
    subtrees = [*(constraints.permitted_subtrees or []), *(constraints.excluded_subtrees or [])] if constraints else []
    return any(isinstance(s, x509.DirectoryName) for s in subtrees)


def check(path: list[x509.Certificate], label) -> list[Problem]:
    """Problems for every name of a certificate below a CA whose constraints exclude it (47, 48, 51).

    A self-issued intermediate's own names are not constrained (RFC 5280 6.1.3 (b)); the leaf's are.
    """
    problems: list[Problem] = []
    for ca_depth in range(1, len(path)):
        constraints = name_constraints(path[ca_depth])
        if constraints is None:
            continue
        for depth in range(ca_depth):
            cert = path[depth]
            if depth > 0 and is_self_issued(cert):
                continue
            for name in _names(cert):
                fault = _judge(name, constraints)
                if fault is None:
                    continue
                code, rule, what = fault
                problems.append(Problem(
                    rule, code, depth,
                    f"{label(depth)} names {_show(name)}, which {what} in the name constraints of {label(ca_depth)}",
                    "the CA's nameConstraints do not allow this name: have the certificate issued by a CA that may "
                    "issue for it", name_to_slash(cert.subject)))
                break
    return problems


def _names(cert: x509.Certificate) -> list[x509.GeneralName]:
    from cryptography import x509

    names: list[x509.GeneralName] = [x509.DirectoryName(cert.subject)] if len(cert.subject) else []
    return names + certificate_sans(cert)


def _show(name: x509.GeneralName) -> str:
    from cryptography import x509

    if isinstance(name, x509.DirectoryName):
        return f"the subject {name_to_slash(name.value)}"
    return san_to_text(name)


def _judge(name: x509.GeneralName, constraints: x509.NameConstraints) -> tuple[int, str, str] | None:
    """(OpenSSL code, rule, what) when ``name`` breaks ``constraints``; None when it passes or is not constrained."""
    permitted = [s for s in constraints.permitted_subtrees or [] if type(s) is type(name)]
    excluded = [s for s in constraints.excluded_subtrees or [] if type(s) is type(name)]
    if not permitted and not excluded:
        return None
    matcher = _MATCHERS.get(type(name).__name__)
    if matcher is None:
        return 51, "name_constraint_unsupported", "is a name form whose constraints tlskit does not evaluate"
    try:
        if permitted and not any(matcher(s.value, name.value, "permitted") for s in permitted):
            return 47, "name_constraints_not_permitted", "is outside the permitted subtrees"
        if any(matcher(s.value, name.value, "excluded") for s in excluded):
            return 48, "name_constraints_excluded", "is inside an excluded subtree"
    except ValueError as exc:
        return 53, "name_constraint_malformed", f"cannot be compared ({exc})"
    return None


def _dns_within(name: str, base: str) -> bool:
    if not base:
        return True
    if base.startswith("."):
        return name.endswith(base)
    return name == base or name.endswith("." + base)


def _dns(base: str, name: str, kind: str) -> bool:
    base, name = base.lower().rstrip("."), name.lower().rstrip(".")
    if not name.startswith("*."):
        return _dns_within(name, base)
    # A wildcard stands for every one-label name under it: permitted only if all of them are,
    # excluded if any of them is.
    parent = name[2:]
    every = _dns_within("x." + parent, base) and (not base.startswith(".") or ("." + parent).endswith(base))
    if kind == "permitted":
        return every
    head, _, rest = base.partition(".")
    return every or (not base.startswith(".") and rest == parent and head not in ("", "*"))


def _ip(network, address, kind: str) -> bool:
    if not isinstance(network, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        raise ValueError(f"malformed IP constraint {network!r}")
    return address.version == network.version and address in network


def _email(base: str, mailbox: str, kind: str) -> bool:
    local, at, domain = mailbox.rpartition("@")
    if not at:
        raise ValueError(f"malformed e-mail address {mailbox!r}")
    if "@" in base:
        base_local, _, base_domain = base.rpartition("@")
        return local == base_local and domain.lower() == base_domain.lower()
    base, domain = base.lower(), domain.lower()
    return domain.endswith(base) if base.startswith(".") else domain == base


def _rdn_key(rdn) -> frozenset:
    return frozenset((a.oid.dotted_string, " ".join(str(a.value).casefold().split()) if isinstance(a.value, str)
                      else a.value) for a in rdn)


def _directory(base: x509.Name, name: x509.Name, kind: str) -> bool:
    """RFC 5280 7.1: ``name`` is within ``base`` when its RDN sequence starts with base's RDNs."""
    base_rdns, name_rdns = list(base.rdns), list(name.rdns)
    return len(name_rdns) >= len(base_rdns) and all(
        _rdn_key(a) == _rdn_key(b) for a, b in zip(base_rdns, name_rdns))


_MATCHERS = {"DNSName": _dns, "IPAddress": _ip, "RFC822Name": _email, "DirectoryName": _directory}
