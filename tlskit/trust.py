"""The trust store a verification ends at: certifi's roots by default, or a CA file the user names.

`chain` and `probe` both verify against a :class:`TrustStore`, so "which roots" and "how a CA file
is read" are decided once.

Example::

    trust = TrustStore.load(ca_file)      # certifi when ca_file is None
    trust.issuers_of(intermediate)        # the trusted certificates that signed it
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tlskit.certificates import issued_by
from tlskit.errors import InputError

if TYPE_CHECKING:
    from cryptography import x509

_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n.*?-----END CERTIFICATE-----", re.DOTALL)


@dataclass
class TrustStore:
    """Trusted certificates (roots, and the intermediates a CA file may hold too), indexed by subject.

    ``name`` is what verdicts say they were verified against: "certifi" or the CA file's path.
    """

    name: str
    certificates: list[x509.Certificate]
    _by_subject: dict[x509.Name, list[x509.Certificate]] = field(init=False, repr=False)
    _store: Any = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self._by_subject = {}
        for cert in self.certificates:
            same_subject = self._by_subject.setdefault(cert.subject, [])
            if cert not in same_subject:  # a CA file may list a root twice (bundles are concatenated)
                same_subject.append(cert)

    @classmethod
    def load(cls, ca_file: str | os.PathLike[str] | None) -> TrustStore:
        """The certificates of ``ca_file``, or certifi's roots when it is None."""
        return cls.certifi() if ca_file is None else cls.from_file(ca_file)

    @classmethod
    def certifi(cls) -> TrustStore:
        from pathlib import Path

        import certifi
        from cryptography import x509

        with warnings.catch_warnings():
            # certifi still ships a root or two with a non-positive serial; that is not the user's problem.
            warnings.simplefilter("ignore")
            return cls("certifi", x509.load_pem_x509_certificates(Path(certifi.where()).read_bytes()))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], name: str | None = None) -> TrustStore:
        """A CA file: PEM or DER, one certificate or a bundle; anything else in it (a key) is ignored."""
        from tlskit.files import read_bytes

        data = read_bytes(path, "CA file")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # as for certifi: a CA's odd serial is not the user's problem
            certs = _plain_pem_certificates(data)
            if certs is None:
                from tlskit.files import parse_bundle

                certs = parse_bundle(data, str(path)).certificates
        if not certs:
            raise InputError(f"CA file {path} holds no certificate", fix="give a PEM or DER file with the root(s)")
        return cls(name or str(path), certs)

    def issuers_of(self, cert: x509.Certificate) -> list[x509.Certificate]:
        """The trusted certificates that issued ``cert`` (named as its issuer, and their key signed it)."""
        return [c for c in self._by_subject.get(cert.issuer, []) if issued_by(cert, c)]

    def named(self, name: x509.Name) -> list[x509.Certificate]:
        """The trusted certificates whose subject is ``name`` (whoever signed them)."""
        return self._by_subject.get(name, [])

    def holds(self, cert: x509.Certificate) -> bool:
        return cert in self._by_subject.get(cert.subject, [])

    def verification_store(self):
        """The ``cryptography`` Store, built once: a verdict and its host check reuse it."""
        if self._store is None:
            from cryptography.x509.verification import Store

            self._store = Store(self.certificates)
        return self._store


def _plain_pem_certificates(data: bytes) -> list[x509.Certificate] | None:
    """The certificates of a file that holds PEM certificates and nothing else, or None for any other file.

    Most CA files are just that. The general reader (keys, DER, encrypted PKCS#8) costs a probe, run
    often from scripts, some 25 ms of imports; it also names the bad block when this path gives up.
    """
    from cryptography import x509

    blocks = _PEM_CERTIFICATE.findall(data)
    if not blocks or b"-----BEGIN " in _PEM_CERTIFICATE.sub(b"", data):
        return None
    try:
        return [x509.load_pem_x509_certificate(block) for block in blocks]
    except ValueError:
        return None
