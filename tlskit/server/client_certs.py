"""Client certificates (mutual TLS): asking for them, and what the server knows of one after the handshake.

``serve --client-ca CA.pem`` makes the TLS layer ask every client for a certificate and verify it
against that CA: the chain, the validity period, the clientAuth purpose (OpenSSL checks the "SSL
client" purpose when a server verifies a client: a serverAuth-only certificate is refused), and, with
``--crl``, revocation of the leaf. A certificate that fails any of these ends the handshake with a TLS
alert: no HTTP answer, so a client with a bad certificate learns nothing about the API. With
``--client-cert optional`` (the default) a client may send none and use another credential; with
``required`` the handshake needs one.

After the handshake the engine keeps a :class:`ClientCertificate` per connection; the credential reader
(:mod:`.credentials`) turns it into the user named by its CN, and a user with pinned certificates is
proven only by a certificate with one of those SHA-256 fingerprints.
"""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass
from pathlib import Path

from tlskit.errors import InputError

MODES = ("optional", "required")


@dataclass(frozen=True)
class ClientCertificate:
    der: bytes
    fingerprint: str        # SHA-256 of the DER, lower-case hex without separators
    subject: str            # RFC 4514, as the upstream header carries it
    common_name: str | None

    @classmethod
    def from_der(cls, der: bytes) -> ClientCertificate:
        from cryptography import x509

        cert = x509.load_der_x509_certificate(der)
        names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        common_name = names[0].value if names and isinstance(names[0].value, str) else None
        return cls(der, hashlib.sha256(der).hexdigest(), cert.subject.rfc4514_string(), common_name)


def fingerprint_of(text: str) -> str:
    """A SHA-256 fingerprint as users type it (``AB:CD:...``, any case) -> lower-case hex."""
    cleaned = text.replace(":", "").strip().lower()
    if len(cleaned) != 64 or any(c not in "0123456789abcdef" for c in cleaned):
        raise InputError(f"bad certificate fingerprint {text!r}", fix="give the SHA-256 as 64 hex digits")
    return cleaned


def configure(context: ssl.SSLContext, ca_file: Path, mode: str = "optional", crl_file: Path | None = None) -> None:
    """Make ``context`` ask for, and verify, client certificates issued by ``ca_file``."""
    if mode not in MODES:
        raise InputError(f"bad --client-cert {mode!r}", fix="give optional or required")
    if not Path(ca_file).is_file():
        raise InputError(f"--client-ca {ca_file} does not exist", fix="give the PEM certificate of the CA that "
                         "issues your client certificates (e.g. tlskit ca's ca.pem)")
    try:
        context.load_verify_locations(cafile=str(ca_file))
        if crl_file is not None:
            if not Path(crl_file).is_file():
                raise InputError(f"--crl {crl_file} does not exist", fix="make one with tlskit ca crl")
            context.load_verify_locations(cafile=str(crl_file))
            context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    except ssl.SSLError as exc:
        raise InputError(f"cannot load {crl_file if crl_file and 'CRL' in str(exc) else ca_file}",
                         exc.reason or str(exc), "give PEM files (the CA certificate; the CRL)") from None
    context.verify_mode = ssl.CERT_REQUIRED if mode == "required" else ssl.CERT_OPTIONAL
