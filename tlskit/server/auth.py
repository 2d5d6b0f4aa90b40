"""Credentials: finding them in a request, and checking them against the user store.

Accepted, in this order (the first one present is the one checked):

- ``Authorization: Basic base64(user:password)`` or ``base64(user:token)`` (a token in the password
  field, as CData Arc and many API clients send it);
- ``Authorization: Token <key>`` and ``Authorization: Bearer <key>``;
- ``X-API-Key: <key>`` and any ``--key-header`` names;
- ``?authtoken=<key>``, only with ``--allow-query-token`` (query strings end up in logs and histories).

Anything else in ``Authorization`` (another scheme, bad base64, no colon) is *malformed*: a 401 like
a wrong password, never a 400 or 500.

Checking costs: a token is one SHA-256 and a dict lookup. A password is a slow hash (argon2, bcrypt)
the first time; the verified pair is then cached in memory under an HMAC with a per-process random key
(never the password itself, and not a plain fast hash of it), so later requests cost one HMAC. Failed
pairs are cached the same way, so a client retrying a wrong password cannot make us hash again and
again. Both caches are dropped when the users database changes (``PRAGMA data_version``, polled at most
once a second), and a cached success is only honoured while the user's stored hash is unchanged.
Slow hashes run in a thread so the event loop keeps serving; concurrent checks of one pair share one run.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import hmac
import secrets
import sqlite3
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

from tlskit.server.users import User, UserStore, password_scheme, verify_password

QUERY_TOKEN = "authtoken"
CACHE_LIMIT = 100_000
# Hash schemes whose check costs about what the dummy argon2 check costs.
SLOW_SCHEMES = frozenset({"argon2", "bcrypt"})


@dataclass(frozen=True)
class Credential:
    """What a request presented. ``name`` is set for Basic; ``source`` says where it came from (for logs)."""

    secret: str
    name: str | None
    source: str          # "basic", "token", "bearer", a key header name, or "query"


class Malformed:
    """A credential was present but unreadable: answered exactly like a wrong one."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class CredentialReader:
    """Pulls the one credential out of an ASGI scope's headers and query string."""

    def __init__(self, key_headers: tuple[str, ...] = ("X-API-Key",), allow_query_token: bool = False) -> None:
        self.key_headers = frozenset(h.lower().encode("latin-1") for h in key_headers)
        self.allow_query_token = allow_query_token

    def read(self, headers: list[tuple[bytes, bytes]], query_string: bytes) -> Credential | Malformed | None:
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
        if self.allow_query_token and query_string and QUERY_TOKEN.encode() in query_string:
            for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
                if name == QUERY_TOKEN:
                    return Credential(value, None, "query") if value else Malformed("empty authtoken")
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
        return Credential(password, name, "basic")
    if scheme in (b"token", b"bearer"):
        try:
            return Credential(rest.decode("ascii"), None, scheme.decode())
        except UnicodeDecodeError:
            return Malformed("token is not ASCII")
    return Malformed("unsupported Authorization scheme")


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class Authenticator:
    """Checks credentials against an in-memory snapshot of the user store (refreshed when it changes)."""

    def __init__(self, store: UserStore, refresh_interval: float = 1.0, clock=time.monotonic) -> None:
        self.store = store
        self.refresh_interval = refresh_interval
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._version: int | None = None
        self._checked_at = float("-inf")
        self.users: dict[str, User] = {}
        self._tokens: dict[str, str] = {}                 # sha256(token) -> user name
        self._good: dict[bytes, tuple[str, str]] = {}     # hmac(name, password) -> (name, stored hash)
        self._bad: set[bytes] = set()
        self._pending: dict[bytes, asyncio.Future] = {}
        self._dummy_hash: str | None = None
        self.stats = {"hashes": 0, "cache_hits": 0}
        self.refresh(force=True)
        store.set_busy_timeout(100)

    # snapshot

    def refresh(self, force: bool = False, check_now: bool = False) -> bool:
        """Reload the snapshot if the database changed; True when it did. Checks at most once a
        ``refresh_interval`` unless ``check_now`` (a miss: maybe the user was added a moment ago)."""
        now = self._clock()
        if not force and not check_now and now - self._checked_at < self.refresh_interval:
            return False
        self._checked_at = now
        try:
            version = self.store.data_version()
            if version == self._version and not force:
                return False
            users = {user.name: user for user in self.store.all()}
        except sqlite3.OperationalError:
            if force:
                raise
            return False    # locked or busy right now: keep serving the last snapshot, retry next time
        self._version = version
        self.users = users
        self._tokens = {digest: user.name for user in users.values() for digest in user.token_hashes}
        self._good.clear()
        self._bad.clear()
        return True

    # checking

    async def authenticate(self, credential: Credential) -> User | None:
        """The user these credentials prove, or None (unknown user, wrong secret: no difference)."""
        self.refresh()
        if credential.name is None:
            digest = _sha256(credential.secret)
            name = self._tokens.get(digest)
            if name is None and self.refresh(check_now=True):
                name = self._tokens.get(digest)
            return self.users.get(name) if name is not None else None
        user = self.users.get(credential.name)
        if user is None and self.refresh(check_now=True):
            user = self.users.get(credential.name)
        if user is not None and user.token_hashes:
            digest = _sha256(credential.secret)
            if any(hmac.compare_digest(digest, known) for known in user.token_hashes):
                return user
        cache_key = hmac.new(self._key, f"{credential.name}\0{credential.secret}".encode("utf-8"),
                             hashlib.sha256).digest()
        hit = self._good.get(cache_key)
        if hit is not None and user is not None and hit[1] == user.password_hash:
            self.stats["cache_hits"] += 1
            return user
        if cache_key in self._bad:
            return None
        pending = self._pending.get(cache_key)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._pending[cache_key] = pending
            try:
                ok = await self._verify(user, credential.secret)
                pending.set_result(ok)
            except BaseException as exc:
                pending.set_exception(exc)
                raise
            finally:
                del self._pending[cache_key]
        ok = await asyncio.shield(pending)
        if ok and user is not None:
            if len(self._good) >= CACHE_LIMIT:
                self._good.clear()
            self._good[cache_key] = (user.name, user.password_hash or "")
            return user
        if len(self._bad) >= CACHE_LIMIT:
            self._bad.clear()
        self._bad.add(cache_key)
        return None

    async def _verify(self, user: User | None, password: str) -> bool:
        """Check a password in a thread; a failure always costs at least one slow (argon2) check."""
        self.stats["hashes"] += 1
        loop = asyncio.get_running_loop()
        if user is None or not user.password_hash:
            # Spend what a real check costs, so an unknown name does not answer faster than a wrong password.
            await loop.run_in_executor(None, self._dummy_check, password)
            return False
        ok = await loop.run_in_executor(None, verify_password, user.password_hash, password)
        if not ok and password_scheme(user.password_hash) not in SLOW_SCHEMES:
            # An imported apr1/{SHA} hash fails in microseconds; without this a wrong password for such a
            # user answers faster than an unknown name, which tells an attacker the name exists.
            await loop.run_in_executor(None, self._dummy_check, password)
        return ok

    def _dummy_check(self, password: str) -> None:
        # Runs in the executor: making the dummy hash the first time costs what a check costs.
        if self._dummy_hash is None:
            from tlskit.server.users import hash_password

            self._dummy_hash = hash_password(secrets.token_urlsafe(16))
        verify_password(self._dummy_hash, password)
