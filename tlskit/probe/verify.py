"""Verifying the chain a server sent, and naming each fault with OpenSSL's verify number and words.

`cryptography.x509.verification` gives the verdict; the chain is also walked the way OpenSSL builds it
so that a failure reads ``21 unable to verify the first certificate``, searchable and comparable with
what `openssl s_client` and `openssl verify` print.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tlskit.certificates import (certificate_sans, is_ca, is_expired, is_not_yet_valid, is_self_signed, issued_by,
                                 may_sign_certificates)
from tlskit.probe.target import ip_or_none

if TYPE_CHECKING:
    from cryptography import x509

    from tlskit.probe.ocsp import OcspStaple
    from tlskit.trust import TrustStore

# OpenSSL 3's X509_V_ERR_* numbers and the words X509_verify_cert_error_string() gives for them.
VERIFY_REASONS = {
    0: "ok",
    1: "unspecified certificate verification error",
    2: "unable to get issuer certificate",
    7: "certificate signature failure",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate",
    21: "unable to verify the first certificate",
    22: "certificate chain too long",
    23: "certificate revoked",
    25: "path length constraint exceeded",
    26: "unsuitable certificate purpose",
    32: "key usage does not include certificate signing",
    47: "permitted subtree violation",
    62: "hostname mismatch",
    64: "IP address mismatch",
    68: "CA signature digest algorithm too weak",
    79: "invalid CA certificate",  # 24 before OpenSSL 3.0, which gave 24 to "no issuer public key"
}

# What the server operator (or the user) can do about each failure.
_FIXES = {
    2: "the trust store holds an intermediate but not its root; add the root to --ca-file",
    9: "the server's clock or the certificate's notBefore is wrong",
    10: "renew the certificate",
    18: "the server uses a self-signed certificate: pass it with --ca-file to trust it on purpose",
    19: "the chain ends in a root nobody trusts: pass that root with --ca-file if it is your own CA",
    20: "the chain's issuer is not trusted: pass your CA with --ca-file, or fix the server's chain",
    23: "the issuer revoked this certificate: install a new one",
    21: "the server sent no intermediate: serve the full chain (fullchain.pem), or pass the issuer with --ca-file",
    62: "the certificate does not name this host: probe the name it was issued for, or reissue with a matching SAN",
    64: "the certificate does not name this IP address: reissue it with an IP SAN",
    68: "the issuer signed with SHA-1 or MD5, which clients refuse: reissue the certificates with SHA-256",
}


@dataclass
class Problem:
    code: int
    reason: str
    depth: int | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "reason": self.reason, "depth": self.depth, "detail": self.detail}


@dataclass
class Verification:
    """The verdict. ``code`` is OpenSSL's verify number (0 when verified), ``problems`` every fault found."""

    verified: bool
    code: int
    reason: str
    trust: str
    hostname: str
    hostname_ok: bool | None
    problems: list[Problem] = field(default_factory=list)
    fix: str | None = None
    path: list[str] = field(default_factory=list)  # subjects from the leaf to the trust anchor, when built

    def as_dict(self) -> dict[str, Any]:
        return {
            "verified": self.verified, "code": self.code, "reason": self.reason, "trust": self.trust,
            "hostname": self.hostname, "hostname_ok": self.hostname_ok,
            "problems": [p.as_dict() for p in self.problems], "fix": self.fix, "path": self.path,
        }


def chain_in_order(chain: list[x509.Certificate]) -> bool:
    """Each certificate the server sent is issued by the next one, as RFC 8446 4.4.2 asks."""
    return all(issued_by(chain[i], chain[i + 1]) for i in range(len(chain) - 1))


def chain_has_root(chain: list[x509.Certificate]) -> bool:
    """The server also sent a self-signed root (harmless but useless: clients must already have it)."""
    return any(is_self_signed(c) for c in chain[1:])


# ----------------------------------------------------------------------------------------------- verify


def verify_chain(
    chain: list[x509.Certificate],
    hostname: str,
    trust: TrustStore,
    now: dt.datetime | None = None,
    staple: OcspStaple | None = None,
) -> Verification:
    """Verify the chain a server sent for ``hostname`` and name the first fault as OpenSSL would.

    `cryptography.x509.verification` gives the verdict. It does not say *why* in a form a script can use,
    so the chain is also walked here the way OpenSSL builds it (trusted issuers first, then the ones the
    server sent) to find OpenSSL's number for the fault: 18/19 self-signed, 20/21 missing issuer,
    9/10 validity, 62/64 name.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    leaf, sent = chain[0], chain[1:]
    name_ok = hostname_matches(leaf, hostname)
    problems, path = _diagnose(leaf, sent, trust, now)
    verdict_error = _cryptography_verify(leaf, sent, trust, now, hostname)
    if staple is not None and staple.certificate_status == "revoked" and staple.matches_leaf and staple.signature_valid:
        # The issuer itself says so, stapled: no chain can make a revoked certificate good.
        when = f" on {staple.revocation_time[:16]}" if staple.revocation_time else ""
        problems.append(Problem(23, VERIFY_REASONS[23], 0, f"the stapled OCSP response says revoked{when}"))
        verdict_error = verdict_error or "revoked"
    if verdict_error is None:
        return Verification(True, 0, VERIFY_REASONS[0], trust.name, hostname, True, [], None, path)
    if not name_ok:
        code = 64 if ip_or_none(hostname) is not None else 62
        problems.append(Problem(code, VERIFY_REASONS[code], 0,
                                f"{hostname} is not in the leaf's names ({', '.join(_leaf_names(leaf)) or 'none'})"))
    if not problems:
        # cryptography refused for a reason OpenSSL would have named differently (or not at all):
        # a policy rule of RFC 5280 / the CA/B Forum. Say what it said.
        code = _code_from_message(verdict_error)
        problems.append(Problem(code, VERIFY_REASONS[code], None, verdict_error))
    first = problems[0]
    return Verification(False, first.code, first.reason, trust.name, hostname, name_ok, problems,
                        _FIXES.get(first.code), path)


def _diagnose(leaf: x509.Certificate, sent: list[x509.Certificate], trust: TrustStore,
              now: dt.datetime) -> tuple[list[Problem], list[str]]:
    """Build the path as OpenSSL does and collect OpenSSL-numbered faults (chain first, then validity)."""
    from tlskit.names import name_to_slash

    problems: list[Problem] = []
    path = [leaf]
    current = leaf
    anchored = False
    while len(path) <= 10:
        depth = len(path) - 1
        if trust.holds(current):
            anchored = True
            break
        # X509_V_FLAG_TRUSTED_FIRST (OpenSSL's default): a trusted issuer wins over a sent one.
        anchor = next(iter(trust.issuers_of(current)), None)
        if anchor is not None:
            path.append(anchor)
            anchored = True
            break
        if is_self_signed(current):
            code = 18 if depth == 0 else 19
            problems.append(Problem(code, VERIFY_REASONS[code], depth,
                                    f"{name_to_slash(current.subject)} is self-signed and not trusted"))
            break
        issuer = next((c for c in sent if c not in path and issued_by(current, c)), None)
        if issuer is None:
            # s_client's final word for a lone leaf is 21; with part of a chain it is 20.
            code = 21 if depth == 0 else 20
            problems.append(Problem(code, VERIFY_REASONS[code], depth,
                                    f"issuer {name_to_slash(current.issuer)} was not sent and is not trusted"))
            break
        path.append(issuer)
        current = issuer
    else:
        problems.append(Problem(22, VERIFY_REASONS[22], len(path) - 1, "more than 10 certificates"))
    # OpenSSL's check_chain_extensions: every issuer on the path must be a CA allowed to sign certificates.
    # A trust anchor is trusted as configured, whatever its extensions say.
    issuers = path[1:-1] if anchored else path[1:]
    for depth, cert in enumerate(issuers, start=1):
        if not is_ca(cert):
            problems.append(Problem(79, VERIFY_REASONS[79], depth,
                                    f"{name_to_slash(cert.subject)} signs certificates but is not a CA (CA:FALSE)"))
        if not may_sign_certificates(cert):
            problems.append(Problem(32, VERIFY_REASONS[32], depth,
                                    f"{name_to_slash(cert.subject)} has a keyUsage without keyCertSign"))
    # OpenSSL's check_auth_level: every signature on the path but the trust anchor's own.
    for depth, cert in enumerate(path[:-1]):
        weak = _weak_digest(cert)
        if weak:
            problems.append(Problem(68, VERIFY_REASONS[68], depth,
                                    f"{name_to_slash(cert.subject)} is signed with {weak}, which verifiers refuse"))
    for depth, cert in enumerate(path):
        if is_expired(cert, now):
            problems.append(Problem(10, VERIFY_REASONS[10], depth,
                                    f"{name_to_slash(cert.subject)} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"))
        elif is_not_yet_valid(cert, now):
            problems.append(Problem(9, VERIFY_REASONS[9], depth,
                                    f"{name_to_slash(cert.subject)} is valid from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"))
    return problems, [name_to_slash(c.subject) for c in path]


def _weak_digest(cert: x509.Certificate) -> str | None:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes

    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None
    return {hashes.SHA1: "SHA-1", hashes.MD5: "MD5"}.get(type(algorithm))


def _cryptography_verify(leaf: x509.Certificate, sent: list[x509.Certificate], trust: TrustStore,
                         now: dt.datetime, hostname: str) -> str | None:
    """None when verified, else cryptography's reason."""
    from cryptography.x509.verification import DNSName, IPAddress, PolicyBuilder, VerificationError

    ip = ip_or_none(hostname)
    try:
        # Certificates carry IDNs as A-labels (xn--...), so compare in that form.
        subject = IPAddress(ip) if ip is not None else DNSName(hostname.rstrip(".").encode("idna").decode().lower())
    except UnicodeError:
        return f"{hostname!r} is not a valid DNS name"
    except ValueError:
        return f"{hostname!r} is not a valid DNS name"
    verifier = PolicyBuilder().store(trust.verification_store()).time(now).build_server_verifier(subject)
    try:
        verifier.verify(leaf, sent)
    except VerificationError as exc:
        return " ".join(str(exc).split())
    except ValueError as exc:  # e.g. a certificate cryptography cannot parse for verification
        return " ".join(str(exc).split())
    return None


def _code_from_message(message: str) -> int:
    text = message.lower()
    if "basicconstraints" in text or "not a ca" in text or "ca certificate" in text:
        return 79
    if "keyusage" in text or "key usage" in text and "extended" not in text:
        return 32
    if "extendedkeyusage" in text or "extended key usage" in text or "eku" in text:
        return 26
    if "signature" in text:
        return 7
    if "path length" in text:
        return 25
    if "name constraint" in text:
        return 47
    if "expired" in text or "validity" in text:
        return 10
    return 1


def _leaf_names(leaf: x509.Certificate) -> list[str]:
    from tlskit.names import san_to_text

    return [san_to_text(n) for n in certificate_sans(leaf)]


def hostname_matches(leaf: x509.Certificate, hostname: str) -> bool:
    """RFC 6125 matching against the SANs only (the CN is ignored, as browsers and cryptography do)."""
    from cryptography import x509

    names = certificate_sans(leaf)
    ip = ip_or_none(hostname)
    if ip is not None:
        return any(isinstance(n, x509.IPAddress) and n.value == ip for n in names)
    try:
        wanted = hostname.rstrip(".").encode("idna").decode().lower()
    except UnicodeError:
        return False
    for name in names:
        if not isinstance(name, x509.DNSName):
            continue
        pattern = name.value.rstrip(".").lower()
        if pattern == wanted:
            return True
        # A wildcard covers exactly one left-most label: *.example.com matches a.example.com only.
        if pattern.startswith("*.") and "." in wanted:
            head, rest = wanted.split(".", 1)
            if head and rest == pattern[2:]:
                return True
    return False
