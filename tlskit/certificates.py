"""What every part of tlskit asks about a certificate, answered once.

Is it a CA, who issued it, does the signature verify, which names does it carry, when is it valid,
what is its fingerprint and its PEM. `chain`, `probe`, `inspect`, `issue` and `acme` import these
rather than keeping their own copies, so that a rule (what makes a v1 certificate a CA, how a SHA-1
signature is checked) is decided in one place.

These are facts, not verdicts: :func:`issued_by` says whether a key signed a certificate, not
whether a verifier should accept the signature algorithm. Policy (WebPKI rules, expiry warnings,
OpenSSL's error numbers) lives with the code that gives the verdict.

Example::

    if issued_by(leaf, candidate) and is_ca(candidate):
        path.append(candidate)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509


# --- who issued whom ---------------------------------------------------------------------------


def is_self_issued(cert: x509.Certificate) -> bool:
    """Subject and issuer are the same name (RFC 5280 3.2); the signature is not looked at."""
    return cert.subject == cert.issuer


# --- what a certificate may do -----------------------------------------------------------------


def is_ca(cert: x509.Certificate) -> bool:
    """Whether ``cert`` is a CA certificate, by RFC 5280's rule.

    With basicConstraints, its cA flag decides. Without it, a version 3 certificate is not a CA
    (4.2.1.9: its key MUST NOT verify certificate signatures). Version 1 certificates have no
    extensions at all; the old roots among them are CAs that clients know out of band, as trust
    anchors (6.1.4 (k)). So a v1 certificate is a CA when it is self-issued, as OpenSSL's
    X509_check_ca also has it, and never when it was issued by another (a v1 intermediate).
    """
    from cryptography import x509

    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return cert.version == x509.Version.v1 and is_self_issued(cert)
    except (x509.DuplicateExtension, ValueError):  # extensions cryptography cannot parse: nothing to rely on
        return False
