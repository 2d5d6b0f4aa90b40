"""Certificates for the in-process chain and verdict tests: :class:`peers_verdicts.Pki` with one cached key per role.

Generating a fresh key for every certificate is what makes a test slow under mutation testing (each
mutant runs the tests again); a role's key only has to differ from the other roles' keys.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from peers_verdicts import DAY, NOW, Issued, Pki, name  # noqa: F401 - re-exported for the unit tests

_KEYS: dict[str, ec.EllipticCurvePrivateKey] = {}
_RSA_KEYS: dict[str, rsa.RSAPrivateKey] = {}


def role_key(role: str) -> ec.EllipticCurvePrivateKey:
    """The one P-256 key of ``role``: the same role always signs with the same key."""
    if role not in _KEYS:
        _KEYS[role] = ec.generate_private_key(ec.SECP256R1())
    return _KEYS[role]


def rsa_role_key(role: str) -> rsa.RSAPrivateKey:
    """The one RSA-2048 key of ``role``, for what only RSA can sign (an MD5 signature)."""
    if role not in _RSA_KEYS:
        _RSA_KEYS[role] = rsa.generate_private_key(65537, 2048)
    return _RSA_KEYS[role]


class FastPki(Pki):
    """A :class:`Pki` whose certificates take the key of their file name unless given one, and are valid
    for 200 days (far from the 30-day expiry warning) unless told otherwise."""

    def issue(self, file: str, subject, issuer, *, ca: bool, key=None, not_after=None, **kwargs) -> Issued:
        return super().issue(file, subject, issuer, ca=ca, key=key or role_key(file),
                             not_after=not_after or NOW + 200 * DAY, **kwargs)



# The DER AlgorithmIdentifier of each weak signature: cryptography's builder refuses to sign with either.
_WEAK_ALGORITHMS = {
    "sha1": bytes.fromhex("300906072a8648ce3d0401"),  # ecdsa-with-SHA1, for an EC signer
    "md5": bytes.fromhex("300d06092a864886f70d0101040500"),  # md5WithRSAEncryption, for an RSA signer
}


def weak_signed(cert: x509.Certificate, signer_key, algorithm: str) -> x509.Certificate:
    """``cert`` signed again by ``signer_key`` with ``algorithm`` "sha1" (an EC key) or "md5" (an RSA key).

    Only the signature algorithm (inside the TBS and after it) and the signature change; names, keys and
    extensions stay, so the result chains where ``cert`` did, as an old CA's certificate would.
    """
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding

    from peers_verdicts import _elements, _tlv
    from tlskit.verdict.der import _read

    identifier = _WEAK_ALGORITHMS[algorithm]
    _, start, end = _read(cert.tbs_certificate_bytes, 0)
    fields = _elements(cert.tbs_certificate_bytes[start:end])
    index = 2 if fields[0][0] == 0xA0 else 1  # [0] version, serial, signature algorithm
    fields[index] = identifier
    tbs = _tlv(0x30, b"".join(fields))
    if algorithm == "sha1":
        signature = signer_key.sign(tbs, ec.ECDSA(hashes.SHA1()))
    else:
        signature = signer_key.sign(tbs, padding.PKCS1v15(), hashes.MD5())
    return x509.load_der_x509_certificate(_tlv(0x30, tbs + identifier + _tlv(0x03, b"\x00" + signature)))
