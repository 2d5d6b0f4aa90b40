"""Credentials: finding the one a request presents (checking it is :mod:`.auth`'s job).

Accepted, in this order (the first one present is the one checked):

- ``Authorization: Basic base64(user:password)`` or ``base64(user:token)`` (a token in the password
  field, as CData Arc and many API clients send it);
- ``Authorization: Token <key>`` and ``Authorization: Bearer <key>``;
- ``Authorization: AWS4-HMAC-SHA256 Credential=KEY/...`` and ``Authorization: AWS KEY:SIG`` (S3 style:
  :mod:`.s3auth` says when the signature is checked);
- ``X-API-Key: <key>``, ``X-CData-Authtoken: <key>`` and any ``--key-header`` names;
- ``?authtoken=<key>`` (or ``@authtoken``), only with ``--allow-query-token`` (query strings end up in
  logs and histories);
- a client certificate verified in the TLS handshake (``--client-ca``): the user its CN names. It comes
  last, so a client that also sends explicit credentials is judged by those.

Anything else in ``Authorization`` (another scheme, bad base64, no colon) is *malformed*: a 401 like
a wrong password, never a 400 or 500.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

from tlskit.server import query
from tlskit.server.s3auth import BadSignature, S3Authorization
from tlskit.server.s3auth import parse_authorization as parse_s3

# A longer Basic password is refused before any hashing: apr1 and bcrypt's pre-hash cost grows with the
# password, and no human types a kilobyte. (RFC 7617 sets no limit; nginx's header buffers bound it.)
MAX_PASSWORD_BYTES = 1024


@dataclass(frozen=True)
class Credential:
    """What a request presented. ``name`` is set for Basic; ``source`` says where it came from (for logs)."""

    secret: str          # the password or token; a certificate's SHA-256 fingerprint; an S3 access key
    name: str | None
    source: str          # "basic", "token", "bearer", "s3", "certificate", a key header name, or "query"
    s3: S3Authorization | None = None


class Malformed:
    """A credential was present but unreadable: answered exactly like a wrong one."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class CredentialReader:
    """Pulls the one credential out of an ASGI scope's headers and query string."""

    def __init__(self, key_headers: tuple[str, ...] = ("X-API-Key",), allow_query_token: bool = False) -> None:
        self.key_headers = frozenset(h.lower().encode("latin-1") for h in key_headers)
        self.allow_query_token = allow_query_token

    def read(self, headers: list[tuple[bytes, bytes]], query_string: bytes,
             client_cert=None) -> Credential | Malformed | None:
        authorization = None
        key = None
        for name, value in headers:
            if name == b"authorization":
                authorization = value
                break
            if key is None and name in self.key_headers:
                key = (name, value)
        if authorization is not None:
            return parse_authorization(authorization)
        if key is not None:
            secret = key[1].decode("latin-1").strip()
            return Credential(secret, None, key[0].decode("latin-1")) if secret else Malformed("empty key header")
        if self.allow_query_token and query_string:
            try:
                token = query.find_token(query_string)
            except query.AmbiguousQuery as exc:
                return Malformed(f"query: {exc}")
            if token is not None:
                return Credential(token, None, "query") if token else Malformed("empty authtoken")
        if client_cert is not None:
            if client_cert.refusal:
                return Malformed(client_cert.refusal)
            if not client_cert.common_name:
                return Malformed("client certificate without a CN")
            return Credential(client_cert.fingerprint, client_cert.common_name, "certificate")
        return None


def parse_authorization(value: bytes) -> Credential | Malformed:
    scheme, _, rest = value.strip().partition(b" ")
    scheme = scheme.lower()
    rest = rest.strip()
    if not rest:
        return Malformed("no credentials after the scheme")
    if scheme == b"basic":
        try:
            decoded = binascii.a2b_base64(rest, strict_mode=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return Malformed("Basic credentials are not base64 of UTF-8")
        name, colon, password = decoded.partition(":")
        if not colon or not name:
            return Malformed("Basic credentials have no user:password")
        if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
            return Malformed("password too long")
        return Credential(password, name, "basic")
    if scheme in (b"token", b"bearer"):
        try:
            return Credential(rest.decode("ascii"), None, scheme.decode())
        except UnicodeDecodeError:
            return Malformed("token is not ASCII")
    if scheme in (b"aws4-hmac-sha256", b"aws"):
        try:
            s3 = parse_s3(value.decode("latin-1"))
        except BadSignature as exc:
            return Malformed(f"S3-style header: {exc}")
        return Credential(s3.access_key, None, "s3", s3)
    return Malformed("unsupported Authorization scheme")
