"""Building, checking and writing certificate signing requests."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tlskit.certificates import to_pem
from tlskit.errors import InputError, VerifyError
from tlskit.files import Output, load_bundle, write_outputs
from tlskit.keys import KeySource, check_supported, prepare_key, signing_hash
from tlskit.names import Subject, file_stem, san_from_common_name, subject_to_name

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

    from tlskit.keys import SlowWork


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


def load_csr(path: Path) -> x509.CertificateSigningRequest:
    """The (first) CSR in a PEM or DER file."""
    csrs = load_bundle(path).csrs
    if not csrs:
        raise InputError(f"{path} holds no CSR", fix="give a PEM or DER certificate request")
    return csrs[0]


def default_file_stem(subject: Subject) -> str:
    """The name of the files made for ``subject`` (see :func:`tlskit.names.file_stem`): its CN."""
    return file_stem(subject.get("CN") or "request", "request")


@dataclass
class CsrFiles:
    """What :func:`write_csr` made and where it is."""

    request: x509.CertificateSigningRequest
    path: Path
    key_path: Path         # the new key, or the existing one the CSR was made with
    key_generated: bool
    key_encrypted: bool    # the new key was written encrypted with the passphrase
    san_from_cn: bool      # the CN was put in as the first SAN (see effective_sans)


def write_csr(
    subject: Subject,
    sans: list[x509.GeneralName],
    key: KeySource,
    *,
    passphrase: bytes | None = None,
    out: Path | None = None,
    key_out: Path | None = None,
    force: bool = False,
    slow_work: SlowWork = nullcontext,
) -> CsrFiles:
    """Make a CSR (and its key, unless ``key`` names a file) and write them: what `tlskit csr` does.

    The CSR goes to ``out`` (default ``<CN>.csr``); the key, ``passphrase`` and the refusal of existing
    files (unless ``force``) are as :func:`tlskit.keys.prepare_key` says. The key is renamed into place
    first, so a CSR on disk always has its key next to it.

    Example::

        made = write_csr({"CN": "www.example.com"}, parse_sans(["example.com"]), KeySource(key_type="ec:p256"))
        made.path, made.key_path   # www.example.com.csr, www.example.com.key
    """
    csr_path = out or Path(f"{default_file_stem(subject)}.csr")
    private_key, key_file = prepare_key(csr_path, key, passphrase=passphrase, key_out=key_out, force=force,
                                        slow_work=slow_work)
    request = build_csr(private_key, subject, sans)
    csr_file = Output.of(csr_path, to_pem(request))
    write_outputs([key_file, csr_file] if key_file else [csr_file], force)
    return CsrFiles(request=request, path=csr_path, key_path=key_file.path if key_file else key.path,
                    key_generated=key_file is not None, key_encrypted=bool(key_file and passphrase),
                    san_from_cn=len(effective_sans(subject, sans)) > len(sans))
