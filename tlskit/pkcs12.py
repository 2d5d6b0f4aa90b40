"""PKCS#12 export of a chain with its key, for Java keystores and Windows, which take no PEM.

Example::

    key = load_key_for_chain("privkey.pem", passphrase)
    write_outputs([Output.of("site.p12", pkcs12_bytes(report, key, passphrase), secret=True)])
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from tlskit.chain import ChainError
from tlskit.errors import InputError, option
from tlskit.keys import check_supported, key_matches_certificate

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

    from tlskit.chain import ChainReport


def load_key_for_chain(path: str | os.PathLike[str], passphrase: bytes | None) -> PrivateKeyTypes:
    """The key, decrypted with ``passphrase`` only if it is encrypted.

    With --pkcs12 the passphrase file protects the .p12, and the key may or may not be encrypted
    with the same passphrase; both must work.
    """
    from tlskit.files import load_private_key_bytes, read_bytes

    data = read_bytes(path, "key file")
    try:
        key = load_private_key_bytes(data, str(path), None)
    except InputError as exc:
        if passphrase is None or "encrypted" not in exc.message:
            raise
        key = load_private_key_bytes(data, str(path), passphrase)
    check_supported(key, str(path))
    return key


def pkcs12_bytes(report: ChainReport, key: PrivateKeyTypes, passphrase: bytes) -> bytes:
    """A PKCS#12 file (Java keystores, Windows) with the key, the leaf and the rest of the chain."""
    if not key_matches_certificate(key, report.leaf):
        raise ChainError("the key does not match the leaf", fix=f"pass the leaf's own private key with {option('key')}",
                         report=report)
    return pkcs12_of(report.leaf, key, report.fullchain()[1:], passphrase)


def pkcs12_of(leaf: x509.Certificate, key: PrivateKeyTypes, chain: list[x509.Certificate], passphrase: bytes) -> bytes:
    """A PKCS#12 file of ``key``, ``leaf`` and the certificates above it, named by the leaf's CN.

    Encrypted with PBES2/AES-256 and a SHA-256 MAC: OpenSSL 3 (curl), Java 8u301+, Windows 10+,
    Firefox and Chrome read it; the old RC2/3DES default is crackable and OpenSSL 3 no longer reads it
    without the legacy provider.
    """
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    from tlskit.names import common_name

    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(50000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(passphrase)
    )
    name = (common_name(leaf.subject) or "tlskit").encode()
    return pkcs12.serialize_key_and_certificates(name, key, leaf, chain or None, encryption)
