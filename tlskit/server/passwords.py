"""Password hashes of `tlskit serve` users: argon2id for new ones, and the htpasswd formats nginx
``auth_basic`` accepts for imported ones (bcrypt ``$2y$``, Apache ``$apr1$`` MD5, ``{SHA}``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

def hash_password(password: str) -> str:
    """argon2id with argon2-cffi's defaults (RFC 9106 second recommendation, ~50 ms)."""
    from argon2 import PasswordHasher

    return PasswordHasher().hash(password)


def password_scheme(stored: str) -> str:
    if stored.startswith("$argon2"):
        return "argon2"
    if stored.startswith(("$2y$", "$2b$", "$2a$")):
        return "bcrypt"
    if stored.startswith("$apr1$"):
        return "apr1"
    if stored.startswith("{SHA}"):
        return "sha1"
    return "unknown"


def verify_password(stored: str, password: str) -> bool:
    """Check a password against any hash format the store holds; False for any malformed hash."""
    scheme = password_scheme(stored)
    secret = password.encode("utf-8")
    try:
        if scheme == "argon2":
            from argon2 import PasswordHasher
            from argon2.exceptions import Argon2Error, InvalidHashError

            try:
                return PasswordHasher().verify(stored, secret)
            except (Argon2Error, InvalidHashError):
                return False
        if scheme == "bcrypt":
            import bcrypt

            # The Python bcrypt reads 72 bytes at most, as every bcrypt does; longer raises in bcrypt 5.
            return bcrypt.checkpw(secret[:72], stored.encode())
        if scheme == "apr1":
            return hmac.compare_digest(apr1_md5(secret, stored.split("$")[2].encode()).encode(), stored.encode())
        if scheme == "sha1":
            digest = base64.b64encode(hashlib.sha1(secret).digest()).decode()
            return hmac.compare_digest(("{SHA}" + digest).encode(), stored.encode())
    except (ValueError, IndexError, TypeError, UnicodeError):
        return False
    return False


_APR1_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def apr1_md5(password: bytes, salt: bytes) -> str:
    """Apache's ``$apr1$`` hash: Poul-Henning Kamp's MD5-crypt with the magic "$apr1$".

    Written out here because nothing in the standard library or our dependencies implements it,
    and htpasswd files made by ``htpasswd -m`` or ``openssl passwd -apr1`` use it.
    """
    magic = b"$apr1$"
    salt = salt[:8]
    final = hashlib.md5(password + salt + password).digest()
    context = password + magic + salt
    for i in range(len(password), 0, -16):
        context += final[:min(i, 16)]
    i = len(password)
    while i:
        context += b"\0" if i & 1 else password[:1]
        i >>= 1
    final = hashlib.md5(context).digest()
    # 1000 rounds "to slow things down" (1995's idea of slow).
    for i in range(1000):
        round_input = password if i & 1 else final
        if i % 3:
            round_input += salt
        if i % 7:
            round_input += password
        round_input += final if i & 1 else password
        final = hashlib.md5(round_input).digest()

    def to64(value: int, length: int) -> str:
        out = ""
        for _ in range(length):
            out += _APR1_ALPHABET[value & 0x3F]
            value >>= 6
        return out

    encoded = ""
    for a, b, c in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)):
        encoded += to64(final[a] << 16 | final[b] << 8 | final[c], 4)
    encoded += to64(final[11], 2)
    return f"$apr1${salt.decode('ascii', 'replace')}${encoded}"
