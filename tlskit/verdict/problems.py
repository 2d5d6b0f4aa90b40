"""One fault of a certificate path: tlskit's rule code, OpenSSL's number, where, and what to do.

Rule codes are stable (scripts read them in ``--json``). A rule is either an error (the path does not
verify) or a Web PKI finding: a rule beyond what OpenSSL and `cryptography` enforce, which fails the
verdict too unless ``--lenient`` makes it a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tlskit.verdict.codes import VERIFY_REASONS

# The Web PKI findings (CA/B Forum Baseline Requirements, RFC 5280 MUSTs that verifiers do not enforce).
FINDINGS = frozenset({
    "cn_not_in_sans",            # BR 7.1.4.3: a subject CN must repeat one of the SANs
    "aki_missing",               # RFC 5280 4.2.1.1: every certificate but a self-signed root names its issuer's key
    "ski_missing",               # RFC 5280 4.2.1.2: every CA certificate carries its own key identifier
    "aki_ski_mismatch",          # the AKI names another key than the issuer's SKI
    "root_aki_other_key",        # a self-signed root whose AKI names a key that is not its own
    "rsa_key_too_small",         # BR 6.1.5: RSA at least 2048 bits
    "rsa_key_size_not_multiple_of_8",  # BR 6.1.5
    "key_algorithm_not_allowed",  # BR 6.1.5 / 7.1.3.1: RSA or ECDSA only (no DSA, no EdDSA)
    "ec_curve_not_allowed",      # BR 6.1.5: P-256, P-384 or P-521
    "serial_zero",               # RFC 5280 4.1.2.2: a positive integer
    "serial_negative",
    "serial_too_long",           # RFC 5280 4.1.2.2: at most 20 octets
    "wildcard_public_suffix",    # BR 3.2.2.6: no *.com, *.co.uk
    "leaf_any_eku",              # BR 7.1.2.7.10: anyExtendedKeyUsage is not allowed in a subscriber certificate
    "leaf_eku_critical",         # BR 7.1.2.7.10: extKeyUsage is not critical
    "ca_eku_excludes_purpose",   # a CA restricted to other purposes cannot vouch for this one
    "root_eku",                  # BR 7.1.2.1.2: a root carries no extKeyUsage
    "version_not_v3",            # BR 7.1.1
    "signature_algorithm_not_allowed",  # BR 7.1.3.2: RSA PKCS#1/PSS or ECDSA with SHA-256/384/512
})


@dataclass
class Problem:
    """``rule`` is tlskit's code, ``code`` OpenSSL's number; ``depth`` 0 is the leaf (None: not one certificate)."""

    rule: str
    code: int
    depth: int | None
    detail: str
    fix: str | None = None
    subject: str | None = None

    @property
    def reason(self) -> str:
        return VERIFY_REASONS.get(self.code, VERIFY_REASONS[1])

    @property
    def is_finding(self) -> bool:
        return self.rule in FINDINGS

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "reason": self.reason, "depth": self.depth, "detail": self.detail,
                "rule": self.rule, "subject": self.subject}


def cert_problem(rule: str, code: int, depth: int, label, cert, detail: str, fix: str | None = None) -> Problem:
    """A problem of the certificate ``cert`` at ``depth`` (``label`` is the path's labeller, kept for callers)."""
    from tlskit.names import name_to_slash

    return Problem(rule, code, depth, detail, fix, name_to_slash(cert.subject))
