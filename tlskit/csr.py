"""Building and checking certificate signing requests."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tlskit.errors import InputError, VerifyError
from tlskit.keys import check_supported, signing_hash
from tlskit.names import Subject, san_from_common_name, subject_to_name

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


def effective_sans(subject: Subject, sans: list[x509.GeneralName]) -> list[x509.GeneralName]:
    """The SANs to put in: the CN first (when it is a host name or IP), then the given ones.

    Browsers and public CAs match only SANs (RFC 6125; CA/B Forum), and require the CN to be one of
    them, so a certificate whose CN is missing from its SANs confuses every client a user cares about.
    """
    from_cn = san_from_common_name(subject.get("CN"))
    if from_cn is None or from_cn in sans:
        return list(sans)
    return [from_cn, *sans]


def build_csr(key: PrivateKeyTypes, subject: Subject, sans: list[x509.GeneralName]) -> x509.CertificateSigningRequest:
    """A signed CSR for ``subject`` with ``sans`` (see :func:`effective_sans`)."""
    from cryptography import x509

    check_supported(key)
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject_to_name(subject))
    names = effective_sans(subject, sans)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, signing_hash(key))


def check_csr(csr: x509.CertificateSigningRequest, source: str = "CSR") -> None:
    """Raise VerifyError when the CSR's self-signature does not verify (it was tampered with)."""
    try:
        valid = csr.is_signature_valid
    except Exception as exc:
        raise InputError(f"{source} cannot be checked", str(exc), "give a CSR with an RSA, EC or Ed25519 key") from None
    if not valid:
        raise VerifyError(f"{source} has an invalid signature", "it was changed after signing",
                          "make a new CSR with tlskit csr")


def csr_sans(csr: x509.CertificateSigningRequest) -> list[x509.GeneralName]:
    from cryptography import x509

    try:
        extension = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(extension.value)
