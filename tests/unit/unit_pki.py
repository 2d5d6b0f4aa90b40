"""Certificates for the in-process chain and verdict tests: :class:`peers_verdicts.Pki` with one cached key per role.

Generating a fresh key for every certificate is what makes a test slow under mutation testing (each
mutant runs the tests again); a role's key only has to differ from the other roles' keys.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from peers_verdicts import DAY, NOW, Issued, Pki, name  # noqa: F401 - re-exported for the unit tests

_KEYS: dict[str, ec.EllipticCurvePrivateKey] = {}


def role_key(role: str) -> ec.EllipticCurvePrivateKey:
    """The one P-256 key of ``role``: the same role always signs with the same key."""
    if role not in _KEYS:
        _KEYS[role] = ec.generate_private_key(ec.SECP256R1())
    return _KEYS[role]


class FastPki(Pki):
    """A :class:`Pki` whose certificates take the key of their file name unless given one, and are valid
    for 200 days (far from the 30-day expiry warning) unless told otherwise."""

    def issue(self, file: str, subject, issuer, *, ca: bool, key=None, not_after=None, **kwargs) -> Issued:
        return super().issue(file, subject, issuer, ca=ca, key=key or role_key(file),
                             not_after=not_after or NOW + 200 * DAY, **kwargs)
