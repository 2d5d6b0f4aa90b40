"""Client certificates (mutual TLS): asking for them, and what the server knows of one after the handshake.

``serve --client-ca CA.pem`` makes the TLS layer ask every client for a certificate and verify it
against that CA: the chain, the validity period, the clientAuth purpose (OpenSSL checks the "SSL
client" purpose when a server verifies a client: a serverAuth-only certificate is refused), and, with
``--crl``, revocation of the leaf. A certificate that fails any of these ends the handshake with a TLS
alert: no HTTP answer, so a client with a bad certificate learns nothing about the API. With
``--client-cert optional`` (the default) a client may send none and use another credential; with
``required`` the handshake needs one.

After the handshake the engine keeps a :class:`ClientCertificate` per connection. OpenSSL's checks are
then followed by tlskit's own (:class:`ClientVerifier`, the verdict engine of ``tlskit chain --purpose
client``: RFC 5280 rules OpenSSL does not apply, weak keys, malformed serials, critical extensions it
does not understand); a certificate they refuse carries the reason, and the credential reader
(:mod:`.credentials`) answers it like a wrong password (401). Otherwise the certificate proves the user
named by its CN, and a user with pinned certificates is proven only by a certificate with one of those
SHA-256 fingerprints.
"""

from __future__ import annotations

import hashlib
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from tlskit.errors import InputError, option
from tlskit.server.reload import FileState

MODES = ("optional", "required")


@dataclass(frozen=True)
class ClientCertificate:
    der: bytes
    fingerprint: str        # SHA-256 of the DER, lower-case hex without separators
    subject: str            # RFC 4514, as the upstream header carries it
    common_name: str | None
    refusal: str | None = None  # why tlskit's own checks refuse it (None: accepted)

    @classmethod
    def from_der(cls, der: bytes, refusal: str | None = None) -> ClientCertificate:
        from cryptography import x509

        cert = x509.load_der_x509_certificate(der)
        names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        common_name = names[0].value if names and isinstance(names[0].value, str) else None
        return cls(der, hashlib.sha256(der).hexdigest(), cert.subject.rfc4514_string(), common_name, refusal)


class ClientVerifier:
    """tlskit's verdict on each client certificate OpenSSL accepted, remembered per certificate.

    A client reconnecting with the same certificate costs a dictionary lookup; a verdict is redone after
    ``ttl`` seconds (so expiry and a new CRL count) and whenever the CA or CRL file changes on disk, which is
    looked at no more than once per ``recheck`` seconds (as the certificate reloader does) rather than on
    every handshake.
    """

    recheck = 1.0

    def __init__(self, ca_file: Path, crl_file: Path | None = None, ttl: float = 300.0, size: int = 4096) -> None:
        self.ca_file = Path(ca_file)
        self.crl_file = Path(crl_file) if crl_file is not None else None
        self.ttl = ttl
        self.size = size
        self._verdicts: OrderedDict[bytes, tuple[float, ClientCertificate]] = OrderedDict()
        self._inputs: tuple = ()
        self._inputs_checked = float("-inf")
        self._trust = None
        self._crls: list = []

    def __call__(self, der: bytes) -> ClientCertificate:
        now = time.monotonic()
        if now - self._inputs_checked >= self.recheck:
            self._inputs_checked = now
            self._refresh_inputs()
        remembered = self._verdicts.get(der)
        if remembered is not None and remembered[0] > now:
            self._verdicts.move_to_end(der)
            return remembered[1]
        certificate = ClientCertificate.from_der(der, self._refusal(der))
        self._verdicts[der] = (now + self.ttl, certificate)
        if len(self._verdicts) > self.size:
            self._verdicts.popitem(last=False)
        return certificate

    def _refusal(self, der: bytes) -> str | None:
        from cryptography import x509

        from tlskit.verdict.client import verify_client_chain

        verdict = verify_client_chain([x509.load_der_x509_certificate(der)], self._trust, crls=self._crls)
        return None if verdict.verified else f"client certificate refused: {verdict.problems[0].detail}"

    def _refresh_inputs(self) -> None:
        files = [self.ca_file] + ([self.crl_file] if self.crl_file else [])
        inputs = tuple(FileState.of(path) for path in files)
        if inputs == self._inputs and self._trust is not None:
            return
        from tlskit.errors import TlskitError
        from tlskit.revocation.crl import load_crls
        from tlskit.trust import TrustStore

        # A file being replaced mid-read keeps the previous inputs; the next request tries again.
        try:
            trust = TrustStore.from_file(self.ca_file)
            crls = load_crls([self.crl_file]) if self.crl_file else []
        except (TlskitError, OSError, ValueError):
            if self._trust is not None:
                return
            raise
        self._trust, self._crls, self._inputs = trust, crls, inputs
        self._verdicts.clear()


def fingerprint_of(text: str) -> str:
    """A SHA-256 fingerprint as users type it (``AB:CD:...``, any case) -> lower-case hex."""
    cleaned = text.replace(":", "").strip().lower()
    if len(cleaned) != 64 or any(c not in "0123456789abcdef" for c in cleaned):
        raise InputError(f"bad certificate fingerprint {text!r}", fix="give the SHA-256 as 64 hex digits")
    return cleaned


def configure(context: ssl.SSLContext, ca_file: Path, mode: str = "optional", crl_file: Path | None = None) -> None:
    """Make ``context`` ask for, and verify, client certificates issued by ``ca_file``."""
    if mode not in MODES:
        raise InputError(f"bad {option('client_cert')} {mode!r}", fix="give optional or required")
    if not Path(ca_file).is_file():
        raise InputError(f"{option('client_ca')} {ca_file} does not exist", fix="give the PEM certificate of the CA that "
                         "issues your client certificates (e.g. tlskit ca's ca.pem)")
    try:
        context.load_verify_locations(cafile=str(ca_file))
        if crl_file is not None:
            if not Path(crl_file).is_file():
                raise InputError(f"{option('crl')} {crl_file} does not exist", fix="make one with tlskit ca crl")
            context.load_verify_locations(cafile=str(crl_file))
            context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    except ssl.SSLError as exc:
        raise InputError(f"cannot load {crl_file if crl_file and 'CRL' in str(exc) else ca_file}",
                         exc.reason or str(exc), "give PEM files (the CA certificate; the CRL)") from None
    context.verify_mode = ssl.CERT_REQUIRED if mode == "required" else ssl.CERT_OPTIONAL
