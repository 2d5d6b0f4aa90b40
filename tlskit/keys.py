"""Key types users name on the command line, and generating, loading and matching keys.

Example::

    spec = KeySpec.parse("ec:p256")
    key = generate_key(spec)
    pem = private_key_pem(key, passphrase=b"secret")
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tlskit.errors import InputError, option

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

    from tlskit.files import Output

    # Wraps work that may take seconds (RSA 3072+ generation); given what is being done, e.g. to show a spinner.
    SlowWork = Callable[[str], AbstractContextManager[object]]

KEY_TYPES = ("rsa:2048", "rsa:3072", "rsa:4096", "ec:p256", "ec:p384", "ec:p521", "ed25519")
# Fast to make and to use, and accepted by every client that matters.
DEFAULT_KEY_TYPE = "ec:p256"

# openssl and other tools spell the curves several ways; accept them all, store one.
_CURVE_ALIASES = {
    "p256": "p256", "p-256": "p256", "prime256v1": "p256", "secp256r1": "p256",
    "p384": "p384", "p-384": "p384", "secp384r1": "p384",
    "p521": "p521", "p-521": "p521", "secp521r1": "p521",
}
_RSA_SIZES = (2048, 3072, 4096)


@dataclass(frozen=True)
class KeySpec:
    """A key type: ``rsa`` with a size, ``ec`` with a curve, or ``ed25519``."""

    algorithm: str
    size: int | None = None
    curve: str | None = None

    @classmethod
    def parse(cls, text: str) -> KeySpec:
        raw = text.strip().lower()
        algorithm, _, param = raw.partition(":")
        if algorithm == "rsa":
            size = param or "2048"
            if not (size.isascii() and size.isdigit()) or int(size) not in _RSA_SIZES:
                raise InputError(f"unknown key type {text!r}", "RSA sizes are 2048, 3072 and 4096",
                                 f"use one of: {', '.join(KEY_TYPES)}")
            return cls("rsa", size=int(size))
        if algorithm in ("ec", "ecdsa"):
            curve = _CURVE_ALIASES.get(param or "p256")
            if curve is None:
                raise InputError(f"unknown key type {text!r}", "EC curves are p256, p384 and p521",
                                 f"use one of: {', '.join(KEY_TYPES)}")
            return cls("ec", curve=curve)
        if raw == "ed25519":
            return cls("ed25519")
        raise InputError(f"unknown key type {text!r}", fix=f"use one of: {', '.join(KEY_TYPES)}")

    def __str__(self) -> str:
        if self.algorithm == "rsa":
            return f"rsa:{self.size}"
        if self.algorithm == "ec":
            return f"ec:{self.curve}"
        return self.algorithm

    @property
    def slow(self) -> bool:
        """Whether generation may take long enough (RSA 3072+) to deserve a spinner."""
        return self.algorithm == "rsa" and (self.size or 0) >= 3072


@dataclass(frozen=True)
class KeySource:
    """Where the key of a new CSR or certificate comes from: an existing key file (``path``), or a new
    key of ``key_type`` (:data:`DEFAULT_KEY_TYPE` when neither is given).

    Nothing is checked or made until :meth:`resolve`, so a caller can refuse existing outputs before
    any key is generated.
    """

    path: Path | None = None
    key_type: str | None = None

    def resolve(self, passphrase: bytes | None = None,
                slow_work: SlowWork = nullcontext) -> tuple[PrivateKeyTypes, bool]:
        """(the key, whether it is new): the file decrypted with ``passphrase``, or a newly generated key."""
        if self.path is not None:
            if self.key_type is not None:
                raise InputError(f"{option('key')} and {option('key_type')} were both given",
                                 fix="use one: an existing key or a new key type")
            return load_private_key(self.path, passphrase), False
        spec = KeySpec.parse(self.key_type or DEFAULT_KEY_TYPE)
        with slow_work(f"Generating {spec} key...") if spec.slow else nullcontext():
            return generate_key(spec), True


def prepare_key(
    output: Path,
    key: KeySource,
    *,
    passphrase: bytes | None = None,
    key_out: Path | None = None,
    force: bool = False,
    slow_work: SlowWork = nullcontext,
) -> tuple[PrivateKeyTypes, Output | None]:
    """The key for a CSR or certificate about to be written to ``output``, and the file for it when it is
    new: ``key_out``, by default beside ``output`` (``www.csr`` -> ``www.key``), mode 0600, encrypted
    with ``passphrase`` (which decrypts an existing key instead).

    Both targets are checked before a key is made: an RSA 4096 key made for nothing is a waste, and a
    refused call must leave the directory as it was.
    """
    from tlskit.files import Output, check_writable

    new_key_path = None if key.path is not None else (key_out or key_path_beside(output))
    check_writable([p for p in (output, new_key_path) if p is not None], force)
    private_key, generated = key.resolve(passphrase, slow_work)
    if not generated:
        return private_key, None
    return private_key, Output.of(new_key_path, private_key_pem(private_key, passphrase), secret=True)


def key_path_beside(path: Path) -> Path:
    """Where a new key goes by default, next to the file made with it: example.csr -> example.key."""
    return path.with_suffix(".key") if path.suffix else path.with_name(path.name + ".key")


def generate_key(spec: KeySpec) -> PrivateKeyTypes:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if spec.algorithm == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=spec.size or 2048)
    if spec.algorithm == "ec":
        curve = {"p256": ec.SECP256R1, "p384": ec.SECP384R1, "p521": ec.SECP521R1}[spec.curve or "p256"]
        return ec.generate_private_key(curve())
    return ed25519.Ed25519PrivateKey.generate()


def load_private_key(path: str | os.PathLike[str], passphrase: bytes | None = None) -> PrivateKeyTypes:
    """Load a private key file (PEM or DER); errors say whether a passphrase is missing or wrong."""
    from tlskit.files import load_private_key_bytes, read_bytes

    key = load_private_key_bytes(read_bytes(path, "key file"), str(path), passphrase)
    check_supported(key, str(path))
    return key


def check_supported(key: PrivateKeyTypes, source: str = "key") -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        return
    raise InputError(f"{source} is a {type(key).__name__.removeprefix('_')} key",
                     "tlskit signs with RSA, EC and Ed25519 keys", "use one of those")


def private_key_pem(key: PrivateKeyTypes, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted with the best available scheme when a passphrase is given."""
    from cryptography.hazmat.primitives import serialization

    encryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def public_key_der(public_key: PublicKeyTypes) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_matches_certificate(key: PrivateKeyTypes, cert: x509.Certificate) -> bool:
    """Whether ``key`` is the private half of ``cert``'s public key (compared as SPKI bytes)."""
    return public_key_der(key.public_key()) == public_key_der(cert.public_key())


@dataclass(frozen=True)
class KeySummary:
    """What a public key is, for display: type "RSA", bits 2048, label "RSA 2048" (or "EC", 256, "EC P-256")."""

    type: str
    bits: int
    label: str

    @classmethod
    def of(cls, public_key: PublicKeyTypes) -> KeySummary:
        from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

        if isinstance(public_key, rsa.RSAPublicKey):
            return cls("RSA", public_key.key_size, f"RSA {public_key.key_size}")
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            names = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
            curve = names.get(public_key.curve.name, public_key.curve.name)
            return cls("EC", public_key.curve.key_size, f"EC {curve}")
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            return cls("Ed25519", 256, "Ed25519")
        if isinstance(public_key, ed448.Ed448PublicKey):
            return cls("Ed448", 456, "Ed448")
        if isinstance(public_key, dsa.DSAPublicKey):
            return cls("DSA", public_key.key_size, f"DSA {public_key.key_size}")
        return cls(type(public_key).__name__, 0, type(public_key).__name__)

    def as_dict(self) -> dict[str, str | int]:
        return {"type": self.type, "bits": self.bits, "label": self.label}


def signing_hash(key: PrivateKeyTypes):
    """The hash to sign with: SHA-256 (SHA-384/512 for the larger curves), none for Ed25519."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.key_size >= 521:
            return hashes.SHA512()
        if key.curve.key_size >= 384:
            return hashes.SHA384()
    return hashes.SHA256()
