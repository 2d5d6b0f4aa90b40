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

import contextlib
import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes


# --- who issued whom ---------------------------------------------------------------------------


def is_self_issued(cert: x509.Certificate) -> bool:
    """Subject and issuer are the same name (RFC 5280 3.2); the signature is not looked at."""
    return cert.subject == cert.issuer


def is_self_signed(cert: x509.Certificate) -> bool:
    """Self-issued and signed by its own key: a root, or a server certificate made with `selfsign`."""
    return issued_by(cert, cert)


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """``issuer``'s subject is ``cert``'s issuer and ``issuer``'s key made ``cert``'s signature.

    SHA-1 and MD5 signatures are checked too, although cryptography's own check refuses them: a chain
    signed with SHA-1 is still a chain, and whoever gives the verdict says that the algorithm is weak.
    """
    if cert.issuer != issuer.subject:
        return False
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except ValueError as exc:
        if "Unsupported signature algorithm" not in str(exc):
            return False  # a bad signature, or a key that cannot sign certificates
    except (InvalidSignature, UnsupportedAlgorithm, TypeError):
        return False
    try:
        public_key, hash_algorithm = issuer.public_key(), cert.signature_hash_algorithm
    except (UnsupportedAlgorithm, ValueError):
        return False
    return signature_valid(public_key, cert.signature, cert.tbs_certificate_bytes, hash_algorithm,
                           cert.signature_algorithm_parameters)


def signature_valid(public_key: CertificatePublicKeyTypes, signature: bytes, data: bytes, hash_algorithm,
                    rsa_padding=None) -> bool:
    """``signature`` over ``data`` verifies with ``public_key`` (RSA, EC, Ed25519 or Ed448).

    For what carries its own signature and signed bytes (a certificate, an OCSP response). RSA uses
    PKCS#1 v1.5 unless ``rsa_padding`` (a certificate's PSS parameters) says otherwise.
    """
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, rsa_padding or padding.PKCS1v15(), hash_algorithm)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(hash_algorithm))
        elif isinstance(public_key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            public_key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, TypeError, ValueError):
        return False
    return True


def subject_key_id(cert: x509.Certificate) -> bytes | None:
    from cryptography import x509

    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except (x509.ExtensionNotFound, x509.DuplicateExtension, ValueError):
        return None


def authority_key_id(cert: x509.Certificate) -> bytes | None:
    """The keyIdentifier of the authorityKeyIdentifier, when it has one (it may name issuer and serial only)."""
    from cryptography import x509

    try:
        return cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except (x509.ExtensionNotFound, x509.DuplicateExtension, ValueError):
        return None


def key_ids_match(cert: x509.Certificate, issuer: x509.Certificate) -> bool | None:
    """Whether ``cert``'s AKI names ``issuer``'s SKI: None when either is missing (nothing to compare).

    RFC 5280 4.2.1.1: a different key identifier is a different key, so False rules ``issuer`` out
    before any signature is checked.
    """
    aki, ski = authority_key_id(cert), subject_key_id(issuer)
    if aki is None or ski is None:
        return None
    return aki == ski


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


def may_sign_certificates(cert: x509.Certificate) -> bool:
    """keyUsage allows keyCertSign, or there is no keyUsage (every use is allowed then)."""
    from cryptography import x509

    try:
        return bool(cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign)
    except x509.ExtensionNotFound:
        return True


# --- names and time ----------------------------------------------------------------------------


def certificate_sans(cert: x509.Certificate) -> list[x509.GeneralName]:
    """The subjectAltName entries (the names clients match; RFC 6125 ignores the CN), or none."""
    from cryptography import x509

    try:
        return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except (x509.ExtensionNotFound, x509.DuplicateExtension, ValueError):
        return []


def validation_time(now: dt.datetime) -> dt.datetime:
    """``now`` as RFC 5280 compares it: in UTC, to the second (certificate times carry no fractions).

    A naive datetime is taken as UTC.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.timezone.utc)
    return now.astimezone(dt.timezone.utc).replace(microsecond=0)


def is_expired(cert: x509.Certificate, now: dt.datetime) -> bool:
    """After notAfter: RFC 5280 4.1.2.5 makes the period inclusive, so notAfter itself is still valid."""
    return cert.not_valid_after_utc < validation_time(now)


def is_not_yet_valid(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc > validation_time(now)


def valid_at(cert: x509.Certificate, now: dt.datetime) -> bool:
    """notBefore <= now <= notAfter, both ends inclusive, to the second."""
    return not is_expired(cert, now) and not is_not_yet_valid(cert, now)


@contextlib.contextmanager
def quiet_parsing():
    """Silence cryptography's warnings about certificates it parses (a root with serial 0 or a negative one).

    Such certificates are real (certifi and Debian ship some); tlskit reports their faults as findings
    instead of letting a Python warning line reach the user's terminal.
    """
    import warnings

    from cryptography.utils import CryptographyDeprecationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        yield


# --- encodings ---------------------------------------------------------------------------------


def fingerprint(cert: x509.Certificate, algorithm: str = "sha256") -> str:
    """The fingerprint as `openssl x509 -fingerprint` prints it: upper-case hex, colon-separated."""
    from cryptography.hazmat.primitives import hashes

    hash_algorithm = {"sha256": hashes.SHA256, "sha1": hashes.SHA1}[algorithm]()
    return cert.fingerprint(hash_algorithm).hex(":").upper()


def to_pem(*items: x509.Certificate | x509.CertificateSigningRequest) -> bytes:
    """PEM text of certificates or CSRs, concatenated in the order given (a fullchain: leaf first)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    return b"".join(item.public_bytes(Encoding.PEM) for item in items)


def pkcs7_certificates(data: bytes) -> list[x509.Certificate] | None:
    """The certificates of a PKCS#7 bundle (PEM or DER), or None when ``data`` is not one.

    Windows CAs hand out chains this way (.p7b, .p7c), and AIA caIssuers URLs may serve one.
    """
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import pkcs7

    loader = pkcs7.load_pem_pkcs7_certificates if b"-----BEGIN PKCS7-----" in data else pkcs7.load_der_pkcs7_certificates
    try:
        return loader(data) or None
    except (ValueError, UnsupportedAlgorithm):  # not PKCS#7, or a kind that carries no certificates
        return None
