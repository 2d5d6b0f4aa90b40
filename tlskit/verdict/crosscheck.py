"""`cryptography`'s WebPKI verifier run on exactly the path tlskit chose, as a second opinion.

tlskit's own rules give the messages; this makes sure no path `cryptography` would refuse is accepted
by mistake. The verifier is given one trust anchor (the path's top) and the path's intermediates only,
so it judges that path and no other. Where `cryptography` is stricter than RFC 5280 on purpose-less
grounds, tlskit's rules decide instead, and the verifier is re-run on the parts of the path that do not
involve those certificates (so everything else it checks still counts):

- the trust anchor's own form (`cryptography` refuses a v1 root: "must be an X509v3 certificate"; RFC
  5280 6.1.1 (d) takes an anchor as configured);
- a CA with a critical policyMappings, or with directoryName name constraints (processed by
  :mod:`.policies` and :mod:`.constraints`);
- a self-issued intermediate (a CA's key rollover): `cryptography` counts it against the
  pathLenConstraint above it, which RFC 5280 6.1.4 (l) does not;
- the certificates whose findings ``--lenient`` turned into warnings.

The EKU, certificatePolicies, policyConstraints and inhibitAnyPolicy extensions are handed to tlskit's
rules through the verifier's extension policies rather than by re-running.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tlskit.certificates import is_self_issued
from tlskit.names import name_to_slash
from tlskit.verdict.constraints import has_directory_constraints
from tlskit.verdict.problems import Problem
from tlskit.verdict.rules import SERVER, PathContext, label_for

if TYPE_CHECKING:
    from cryptography import x509

_ANY_EKU = "2.5.29.37.0"
_EKU = {SERVER: "1.3.6.1.5.5.7.3.1", "client": "1.3.6.1.5.5.7.3.2"}


def disagreement(path: list[x509.Certificate], context: PathContext, handled: set[int]) -> Problem | None:
    """None when `cryptography` accepts ``path`` (leaf first, anchor last), or refuses only for reasons tlskit's
    rules have judged (the anchor, ``handled`` depths, the certificates of the list above); else its refusal."""
    top = len(path) - 1
    refusal = _refusal(path, 0, top, context)
    if refusal is None:
        return None
    offenders = {top} | set(handled) | {i for i in range(1, top) if _needs_tlskit(path[i])}
    start = 0
    for depth in range(top + 2):
        if depth > top or depth in offenders:
            if start < depth:
                refusal = _refusal(path, start, depth - 1, context)
                if refusal is not None:
                    return _problem(path, start, refusal, context)
            start = depth + 1
    return None


def _needs_tlskit(cert: x509.Certificate) -> bool:
    if has_directory_constraints(cert) or is_self_issued(cert):
        return True
    return any(ext.critical and ext.oid.dotted_string == "2.5.29.33" for ext in cert.extensions)


def _problem(path, depth: int, refusal: str, context: PathContext) -> Problem:
    label = label_for(path, True, context.bottom_is_ca)
    return Problem("cryptography_refused", code_from_message(refusal), depth,
                   f"cryptography's verifier refuses the path at {label(depth)}: {refusal}",
                   "check the certificates against the CA/B Forum's profile", name_to_slash(path[depth].subject))


def _refusal(path, bottom: int, top: int, context: PathContext) -> str | None:
    """None when the verifier accepts path[bottom..top] with path[top] as its only trust anchor."""
    from cryptography.x509.verification import Store, VerificationError

    leaf = path[bottom]
    intermediates = list(path[bottom + 1:top])
    verifier = _verifier(Store([path[top]]), context, as_leaf=bottom == 0 and not context.bottom_is_ca)
    try:
        verifier.verify(leaf, intermediates)
    except (VerificationError, ValueError) as exc:
        return _clean(str(exc))
    return None


def _verifier(store, context: PathContext, as_leaf: bool):
    from cryptography import x509
    from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder

    wanted = _EKU[context.purpose]

    def ee_eku(policy, cert, eku) -> None:
        if eku is not None and not any(oid.dotted_string in (wanted, _ANY_EKU) for oid in eku):
            raise ValueError("required EKU not found")

    def any_eku(policy, cert, eku) -> None:
        return None  # a CA's EKU is judged by tlskit's rules (ca_eku_excludes_purpose)

    ca = (ExtensionPolicy.webpki_defaults_ca()
          .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, any_eku)
          .may_be_present(x509.CertificatePolicies, Criticality.AGNOSTIC, None)
          .may_be_present(x509.PolicyConstraints, Criticality.AGNOSTIC, None)
          .may_be_present(x509.InhibitAnyPolicy, Criticality.AGNOSTIC, None))
    if as_leaf:
        ee = (ExtensionPolicy.webpki_defaults_ee()
              .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, ee_eku)
              .may_be_present(x509.CertificatePolicies, Criticality.AGNOSTIC, None))
        if context.purpose != SERVER:
            # A client certificate may name its user in the subject only; RFC 5280 does not require a SAN.
            ee = ee.may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
    else:
        ee = (ExtensionPolicy.webpki_defaults_ca()
              .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, any_eku)
              .may_be_present(x509.CertificatePolicies, Criticality.AGNOSTIC, None)
              .may_be_present(x509.PolicyConstraints, Criticality.AGNOSTIC, None)
              .may_be_present(x509.InhibitAnyPolicy, Criticality.AGNOSTIC, None))
    builder = PolicyBuilder().store(store).time(context.at).extension_policies(ca_policy=ca, ee_policy=ee)
    if as_leaf and context.host is not None:
        return builder.build_server_verifier(context.host.general_name)
    return builder.build_client_verifier()


def _clean(text: str) -> str:
    import re

    text = " ".join(text.split()).removeprefix("validation failed: ")
    text = text.replace("Python extension validator failed: ValueError: ", "")
    return re.sub(r"<Certificate\(subject=<Name\((.*?)\)>, \.\.\.\)>", r"\1", text)


def code_from_message(message: str) -> int:
    """OpenSSL's nearest number for a refusal of `cryptography`'s verifier."""
    text = message.lower()
    for words, code in (("basicconstraints", 79), ("not a ca", 79), ("keycertsign", 32), ("eku", 26),
                        ("extended key usage", 26), ("signature algorithm", 68), ("signature", 7),
                        ("path length", 25), ("name constraint", 47), ("not valid at validation time", 10),
                        ("rsa key", 67), ("public key", 67), ("subjectaltname", 62), ("critical", 34)):
        if words in text:
            return code
    return 1
