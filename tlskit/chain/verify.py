"""Verifying an ordered chain with ``cryptography.x509.verification`` (WebPKI rules) against a trust store.

The verifier's refusals are turned into sentences that name the certificate and the extension.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

from tlskit.certificates import certificate_sans, is_ca
from tlskit.chain.report import ChainError, ChainReport
from tlskit.errors import InputError
from tlskit.names import name_to_slash

if TYPE_CHECKING:
    from tlskit.trust import TrustStore

# Validation errors name extensions by OID; say what they are.
_EXTENSION_NAMES = {
    "2.5.29.17": "subjectAltName", "2.5.29.19": "basicConstraints", "2.5.29.15": "keyUsage",
    "2.5.29.37": "extendedKeyUsage", "2.5.29.35": "authorityKeyIdentifier", "2.5.29.14": "subjectKeyIdentifier",
    "2.5.29.30": "nameConstraints", "2.5.29.32": "certificatePolicies", "1.3.6.1.5.5.7.1.1": "authorityInfoAccess",
}


def verify_report(report: ChainReport, trust: TrustStore, now: dt.datetime) -> None:
    """Verify ``report``'s chain against ``trust`` (and its host, if any); set ``verified`` or raise ChainError."""
    from cryptography.x509.verification import VerificationError

    root = report.root
    if root is not None and root.source != trust.name and not trust.holds(root.certificate):
        raise ChainError(f"the chain ends at the root {name_to_slash(root.certificate.subject)}, which "
                         f"{trust.name} does not trust",
                         fix="pass --ca-file with that root if it is your private CA (e.g. its ca.pem)", report=report)
    intermediates = [link.certificate for link in report.links[1:] if link.role == "intermediate"]
    try:
        _verifier(trust, now, None, is_ca(report.leaf)).verify(report.leaf, intermediates)
    except VerificationError as exc:
        reason, fix = _verification_reason(exc), f"check the certificates against {trust.name}"
        weak = [f.subject for f in report.findings if f.code == "weak_signature"]
        if weak and "signature algorithm" in reason.lower():
            reason = f"{', '.join(map(str, weak))} {'is' if len(weak) == 1 else 'are'} signed with SHA-1 or MD5, which verifiers refuse"
            fix = "have them reissued with SHA-256"
        raise ChainError("the chain does not verify", reason, fix, report=report) from None
    if report.host is not None:
        try:
            _verifier(trust, now, report.host).verify(report.leaf, intermediates)
        except VerificationError:
            from tlskit.names import san_to_text

            names = ", ".join(san_to_text(n) for n in certificate_sans(report.leaf)) or "no SAN"
            raise ChainError(f"the leaf is not valid for {report.host}", f"it names {names}",
                             "use the certificate issued for that name, or check --host", report=report) from None
    report.verified = True


def _verifier(trust: TrustStore, now: dt.datetime, host: str | None, leaf_is_ca: bool = False):
    """A server verifier for ``host``; without a host, the same WebPKI rules minus the name match.

    A chain that starts at a CA (a sub-CA's chain file) is checked with the CA rules at the bottom too.
    """
    from cryptography import x509
    from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder

    builder = PolicyBuilder().store(trust.verification_store()).time(now.replace(tzinfo=None))
    if host is not None:
        return builder.build_server_verifier(host_name(host))
    # The client verifier checks everything but the host name. Its EKU rule (clientAuth, on the leaf
    # and on any CA that carries an EKU) is swapped for the server's, since a fullchain is for a TLS
    # server: intermediates restricted to serverAuth are common.
    bottom = ExtensionPolicy.webpki_defaults_ca() if leaf_is_ca else ExtensionPolicy.webpki_defaults_ee()
    ee_policy = bottom.may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _require_server_auth)
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _require_server_auth)
    builder = builder.extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
    return builder.build_client_verifier()


def _require_server_auth(policy, cert, eku) -> None:
    from cryptography.x509.oid import ExtendedKeyUsageOID

    if eku is not None and ExtendedKeyUsageOID.SERVER_AUTH not in eku and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku:
        raise ValueError(f"the extendedKeyUsage of {name_to_slash(cert.subject)} does not allow serverAuth")


# A host name as a client would connect to it: LDH labels, dots between them (RFC 1123).
_HOST_NAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$")


def host_name(host: str):
    """``host`` as the verifier takes it (DNSName or IPAddress); InputError when it is neither."""
    import ipaddress

    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_host = ""
    if not _HOST_NAME.match(ascii_host):
        raise InputError(f"--host {host!r} is not a host name or IP address", fix="give e.g. www.example.com")
    return x509.DNSName(ascii_host.rstrip(".").lower())


def _verification_reason(exc: Exception) -> str:
    text = str(exc).removeprefix("validation failed: ")
    text = text.replace("Python extension validator failed: ValueError: ", "")
    text = re.sub(r"<Certificate\(subject=<Name\((.*?)\)>, \.\.\.\)>", r"\1", text)
    for oid, name in _EXTENSION_NAMES.items():
        text = text.replace(f"{oid}:", f"{name}:")
    return text
