"""RFC 5280 6.1 certificate policy processing: policyConstraints, inhibitAnyPolicy, policyMappings.

`cryptography` refuses any certificate that carries these (critical, as the RFC requires) as an
"unaccounted-for critical extension"; OpenSSL only applies them with -policy_check. Here they are
processed for every path, with the inputs a TLS client has: any policy acceptable, no explicit policy
required by the client itself. The valid_policy_tree is kept as its newest layer only (valid policy and
expected policy set per node): with anyPolicy as the user's initial set, that layer alone decides
whether the tree is NULL, which is all the verdict needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tlskit.certificates import is_self_issued
from tlskit.names import name_to_slash
from tlskit.verdict.der import policy_mappings
from tlskit.verdict.problems import Problem

if TYPE_CHECKING:
    from cryptography import x509

ANY_POLICY = "2.5.29.32.0"
_POLICY_MAPPINGS = "2.5.29.33"


def _extension(cert: x509.Certificate, kind):
    from cryptography import x509

    try:
        return cert.extensions.get_extension_for_class(kind).value
    except (x509.ExtensionNotFound, x509.DuplicateExtension, ValueError):
        return None


def _mappings(cert: x509.Certificate) -> list[tuple[str, str]] | None | bool:
    """The policyMappings pairs; None when absent; False when present but malformed."""
    from cryptography import x509

    try:
        extensions = list(cert.extensions)
    except (x509.DuplicateExtension, ValueError):
        return None  # refused as extensions_malformed by the path's rules
    for ext in extensions:
        if ext.oid.dotted_string == _POLICY_MAPPINGS:
            value = ext.value.value if isinstance(ext.value, x509.UnrecognizedExtension) else None
            pairs = policy_mappings(value) if value is not None else None
            return pairs if pairs is not None else False
    return None


def carries_policy_controls(cert: x509.Certificate) -> bool:
    """Whether ``cert`` has one of the extensions only this module understands."""
    from cryptography import x509

    return (_extension(cert, x509.PolicyConstraints) is not None or _extension(cert, x509.InhibitAnyPolicy) is not None
            or _mappings(cert) is not None)


def check(path: list[x509.Certificate], label) -> list[Problem]:
    """42 for a malformed policy extension, 43 when the path requires an explicit policy it does not have.

    ``path`` is leaf first and ends at the trust anchor, which takes no part (RFC 5280 6.1: the anchor is
    an input, not a certificate of the path).
    """
    from cryptography import x509

    certs = list(reversed(path[:-1]))  # RFC order: certificate 1 is issued by the anchor, n is the leaf
    n = len(certs)
    if n == 0 or not any(carries_policy_controls(c) for c in certs):
        return []
    explicit_policy = inhibit_any = policy_mapping = n + 1
    layer: list[tuple[str, frozenset[str]]] | None = [(ANY_POLICY, frozenset({ANY_POLICY}))]
    for i, cert in enumerate(certs, start=1):
        depth = n - i
        policies = _extension(cert, x509.CertificatePolicies)
        if policies is not None and layer is not None:
            oids = [p.policy_identifier.dotted_string for p in policies]
            new: dict[str, frozenset[str]] = {}
            for oid in oids:
                if oid == ANY_POLICY:
                    continue
                if any(oid in expected for _, expected in layer) or any(v == ANY_POLICY for v, _ in layer):
                    new[oid] = frozenset({oid})
            if ANY_POLICY in oids and (inhibit_any > 0 or (i < n and is_self_issued(cert))):
                for _, expected in layer:
                    for oid in expected:
                        new.setdefault(oid, frozenset({oid}))
            layer = list(new.items()) or None
        elif policies is None:
            layer = None
        if explicit_policy <= 0 and layer is None:
            return [_no_policy(depth, label, cert)]
        if i == n:
            break
        mappings = _mappings(cert)
        if mappings is False or (mappings and any(ANY_POLICY in pair for pair in mappings)):
            return [Problem("policy_extension_invalid", 42, depth,
                            f"{label(depth)} has a policyMappings extension that is malformed or maps anyPolicy",
                            "have the CA reissued with a valid policyMappings", name_to_slash(cert.subject))]
        if mappings and layer is not None:
            mapped: dict[str, set[str]] = {}
            for issuer_policy, subject_policy in mappings:
                mapped.setdefault(issuer_policy, set()).add(subject_policy)
            if policy_mapping > 0:
                updated = [(v, frozenset(mapped[v]) if v in mapped else e) for v, e in layer]
                if any(v == ANY_POLICY for v, _ in layer):
                    present = {v for v, _ in layer}
                    updated += [(p, frozenset(s)) for p, s in mapped.items() if p not in present]
                layer = updated
            else:
                layer = [(v, e) for v, e in layer if v not in mapped] or None
        if not is_self_issued(cert):
            explicit_policy, policy_mapping, inhibit_any = (max(explicit_policy - 1, 0), max(policy_mapping - 1, 0),
                                                            max(inhibit_any - 1, 0))
        constraints = _extension(cert, x509.PolicyConstraints)
        if constraints is not None:
            if constraints.require_explicit_policy is not None:
                explicit_policy = min(explicit_policy, constraints.require_explicit_policy)
            if constraints.inhibit_policy_mapping is not None:
                policy_mapping = min(policy_mapping, constraints.inhibit_policy_mapping)
        inhibit = _extension(cert, x509.InhibitAnyPolicy)
        if inhibit is not None:
            inhibit_any = min(inhibit_any, inhibit.skip_certs)
    leaf = certs[-1]
    if explicit_policy != 0:
        explicit_policy -= 1
    constraints = _extension(leaf, x509.PolicyConstraints)
    if constraints is not None and constraints.require_explicit_policy == 0:
        explicit_policy = 0
    if explicit_policy <= 0 and layer is None:
        return [_no_policy(0, label, leaf)]
    return []


def _no_policy(depth: int, label, cert: x509.Certificate) -> Problem:
    return Problem("no_explicit_policy", 43, depth,
                   f"the path requires an explicit certificate policy (policyConstraints requireExplicitPolicy) and "
                   f"{label(depth)} leaves no acceptable policy", "have the certificates issued under the policies "
                   "their CAs require (certificatePolicies)", name_to_slash(cert.subject))
