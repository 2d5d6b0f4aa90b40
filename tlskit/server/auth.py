"""Checking credentials against the users database: fast for the good, equal for the bad, and bounded.

- **Tokens** cost one SHA-256 and a dict lookup in an in-memory snapshot of the users.
- **Passwords** cost a slow hash (argon2, bcrypt) the first time; the verified pair is then cached in
  memory under a MAC (keyed BLAKE2b) with a per-process random key (never the password itself), so
  later requests cost one MAC. Failed pairs are cached the same way. Both caches are dropped when the users change.
  Slow hashes run on ``hash_workers`` threads of their own, behind the per-address slots and failure
  budget of :mod:`.throttle`; concurrent checks of one pair share one run.
- **Failures take the same time whoever they are for**: an unknown name, a wrong password for an
  argon2, bcrypt (of any cost), apr1 or ``{SHA}`` user, or a token-only user. Every failed password
  check ends no sooner than ``failure_floor`` after it began, a floor set from what the slowest hash
  setting in the database costs (measured, once per setting) with a margin. The wait is a sleep, not
  work, so failures cost the server nothing beyond the real check.
- **The snapshot is what is in the store**: it is reloaded when another process commits and when the
  file is replaced (see :meth:`UserStore.changed`), or, for PostgreSQL, by the store's own background
  feed (:mod:`.users_pg`); the Authenticator only asks ``changed()`` and ``all()``. When the store cannot
  be read, a credential verified against it in the last ``auth_cache_ttl`` seconds still gets in (a
  user removed meanwhile through another instance is out after that at the latest); everything else
  is answered 503.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import hmac
import logging
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tlskit.server.credentials import Credential
from tlskit.server.throttle import LoginThrottle, ThrottleSettings
from tlskit.server.users import StoreUnavailable, User, UserStore, verify_password

log = logging.getLogger("tlskit.serve")

CACHE_LIMIT = 100_000
MIN_FAILURE_FLOOR = 0.1      # seconds; also what a failure takes when no password hash is stored at all
FLOOR_MARGIN = 1.5           # the floor is this many times the slowest hash setting's measured cost
STALE_GRACE = 60.0           # default auth_cache_ttl: seconds a verified credential works while the store is down


@dataclass(frozen=True)
class Refused:
    """Why a credential did not let the request in: 401 (wrong), 429 (throttled), 503 (cannot check)."""

    status: int
    reason: str
    retry_after: int = 0


WRONG = Refused(401, "credentials")


@dataclass(frozen=True)
class SignedRequest:
    """The parts of a request an S3-style signature covers (``body`` None: not read, not needed)."""

    method: str
    raw_path: bytes
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes | None
    now: datetime.datetime


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def hash_setting(stored: str) -> str:
    """What a hash's cost depends on: the scheme and its parameters, without salt and digest."""
    if stored.startswith("$argon2"):
        return stored.rsplit("$", 2)[0]
    if stored.startswith("$2"):
        return stored[:7]
    return stored.split("$")[1] if stored.startswith("$") else stored[:5]


class Authenticator:
    """Checks credentials against an in-memory snapshot of the user store (refreshed when it changes)."""

    def __init__(self, store: UserStore, refresh_interval: float = 1.0, clock=time.monotonic,
                 throttle: LoginThrottle | None = None, hash_workers: int = 2,
                 auth_cache_ttl: float = STALE_GRACE) -> None:
        self.store = store
        self.auth_cache_ttl = auth_cache_ttl
        self._verified: dict[bytes, float] = {}           # mac(credential) -> when the live store last vouched for it
        # A store whose changed() only reads memory (PostgreSQL's feed) says how often it may be asked.
        self.refresh_interval = getattr(store, "refresh_interval", refresh_interval)
        self.throttle = throttle or LoginThrottle(ThrottleSettings(max_failures=0))
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._checked_at = float("-inf")
        self.users: dict[str, User] = {}
        self._tokens: dict[str, str] = {}                 # sha256(token) -> user name
        self._s3_keys: dict[str, tuple[str, str]] = {}    # S3 access key id -> (user name, secret)
        self._good: dict[bytes, tuple[str, str]] = {}     # hmac(name, password) -> (name, stored hash)
        self._bad: set[bytes] = set()
        self._pending: dict[bytes, asyncio.Future] = {}
        self._pool = ThreadPoolExecutor(max_workers=max(1, hash_workers), thread_name_prefix="tlskit-hash")
        self._costs: dict[str, float] = {}                # hash setting -> seconds one check takes
        self._measuring: asyncio.Task | None = None
        self.failure_floor = MIN_FAILURE_FLOOR
        self.unavailable_since: float | None = None
        self.stats = {"hashes": 0, "cache_hits": 0}
        store.set_busy_timeout(100)
        self.refresh(force=True)
        if self.unavailable_since is not None:
            raise StoreUnavailable(f"cannot read the users database {store.location}")

    # --- the snapshot ---------------------------------------------------------------------------------

    def refresh(self, force: bool = False, check_now: bool = False) -> bool:
        """Reload the snapshot if the users changed; True when it did. Checks at most once a
        ``refresh_interval`` unless ``check_now`` (a miss: maybe the user was added a moment ago)."""
        now = self._clock()
        if not force and not check_now and now - self._checked_at < self.refresh_interval:
            return False
        self._checked_at = now
        try:
            if not self.store.changed() and not force:
                self._recovered()
                return False
            users = {user.name: user for user in self.store.all()}
        except StoreUnavailable as exc:
            self._unavailable(str(exc))
            return False
        except Exception as exc:   # sqlite3 errors from a file replaced mid-read, and the like
            if "locked" in str(exc) or "busy" in str(exc):
                return False    # a writer right now: keep serving the last snapshot, retry next time
            self._unavailable(" ".join(str(exc).split()))
            return False
        self._recovered()
        self.users = users
        self._tokens = {digest: user.name for user in users.values() for digest in user.token_hashes}
        self._s3_keys = {key: (user.name, secret) for user in users.values() for key, secret in user.s3_keys.items()}
        self._good.clear()
        self._bad.clear()
        return True

    def _unavailable(self, why: str) -> None:
        if self.unavailable_since is None:
            self.unavailable_since = self._clock()
            log.error("users database unreadable (%s): answering 503 for what the last good copy does not "
                      "hold, and for everything after %g s", why, self.auth_cache_ttl)

    def _recovered(self) -> None:
        if self.unavailable_since is not None:
            self.unavailable_since = None
            log.warning("users database %s readable again", self.store.location)

    def _stale(self) -> bool:
        """Unreadable for longer than the grace: not even the last snapshot may answer."""
        since = self.unavailable_since
        return since is not None and self._clock() - since > self.auth_cache_ttl

    def _unavailable_refusal(self) -> Refused:
        return Refused(503, "users database unavailable", 5)

    # --- checking -------------------------------------------------------------------------------------

    async def authenticate(self, credential: Credential, address: str = "",
                           request: SignedRequest | None = None) -> User | Refused:
        """The user these credentials prove, or why not (unknown user and wrong secret alike: 401).

        ``request`` is what an S3-style signature covers; without it a signed-mode key is refused.
        While the store cannot be read, only a credential it vouched for in the last ``auth_cache_ttl``
        seconds gets in; the others are 503."""
        outcome = await self._authenticate(credential, address, request)
        if not isinstance(outcome, User):
            return outcome
        proof = hashlib.blake2b(f"{credential.source}\0{credential.name}\0{credential.secret}".encode("utf-8"),
                                key=self._key, digest_size=16).digest()
        now = self._clock()
        if self.unavailable_since is None:
            if len(self._verified) >= CACHE_LIMIT:
                self._verified.clear()
            self._verified[proof] = now
            return outcome
        vouched = self._verified.get(proof)
        if vouched is None or now - vouched > self.auth_cache_ttl:
            return self._unavailable_refusal()
        return outcome

    async def _authenticate(self, credential: Credential, address: str,
                            request: SignedRequest | None) -> User | Refused:
        started = self._clock()
        self.refresh()
        if self._stale():
            return self._unavailable_refusal()
        if credential.source == "certificate":
            return self._certificate(credential)
        if credential.name is None:
            digest = _sha256(credential.secret)
            name = self._tokens.get(digest)
            if name is None and self.refresh(check_now=True):
                name = self._tokens.get(digest)
            if name is not None:
                return self.users[name]         # a token, or an S3 access key that is a token (key mode)
            if credential.s3 is not None:
                return self._signed(credential, request)
            return self._unavailable_refusal() if self.unavailable_since is not None else WRONG
        user = self.users.get(credential.name)
        if user is None and self.refresh(check_now=True):
            user = self.users.get(credential.name)
        if user is not None and user.token_hashes:
            digest = _sha256(credential.secret)
            if any(hmac.compare_digest(digest, known) for known in user.token_hashes):
                return user
        # BLAKE2b with a key is a MAC, and several times cheaper than HMAC-SHA-256 through OpenSSL 3.
        cache_key = hashlib.blake2b(f"{credential.name}\0{credential.secret}".encode("utf-8"), key=self._key,
                                    digest_size=32).digest()
        hit = self._good.get(cache_key)
        if hit is not None and user is not None and hit[1] == user.password_hash:
            self.stats["cache_hits"] += 1
            return user
        if user is None and self.unavailable_since is not None:
            return self._unavailable_refusal()     # the name may exist in the database we cannot read
        wait = self.throttle.retry_after(address)
        if wait:
            return Refused(429, "too many failed logins", wait)
        if cache_key in self._bad:
            self.throttle.failed(address)
            return WRONG
        ok = await self._check(cache_key, user, credential.secret, address)
        if isinstance(ok, Refused):
            return ok
        if ok and user is not None:
            if len(self._good) >= CACHE_LIMIT:
                self._good.clear()
            self._good[cache_key] = (user.name, user.password_hash)
            return user
        if len(self._bad) >= CACHE_LIMIT:
            self._bad.clear()
        self._bad.add(cache_key)
        self.throttle.failed(address)
        await self._wait_out_the_floor(started)
        return WRONG

    def is_signed_key(self, credential: Credential) -> bool:
        """An S3 access key of a key pair (signed mode), not a token (key mode)."""
        return credential.secret in self._s3_keys and _sha256(credential.secret) not in self._tokens

    def _certificate(self, credential: Credential) -> User | Refused:
        """A client certificate the TLS layer verified: its CN's user, if the user pins none or this one."""
        user = self.users.get(credential.name)
        if user is None and self.refresh(check_now=True):
            user = self.users.get(credential.name)
        if user is None:
            return self._unavailable_refusal() if self.unavailable_since is not None else WRONG
        if user.cert_fingerprints and not any(hmac.compare_digest(credential.secret, pinned)
                                              for pinned in user.cert_fingerprints):
            return WRONG
        return user

    def _signed(self, credential: Credential, request: SignedRequest | None) -> User | Refused:
        """Signed mode: the key pair's secret must have signed this very request, recently."""
        from tlskit.server import s3auth

        owner = self._s3_keys.get(credential.secret)
        if owner is None or request is None:
            return self._unavailable_refusal() if owner is None and self.unavailable_since is not None else WRONG
        name, secret = owner
        auth = credential.s3
        try:
            if auth.version == 4:
                s3auth.verify_v4(auth, secret, request.method, request.raw_path, request.query, request.headers,
                                 request.body, request.now)
            else:
                s3auth.verify_v2(auth, secret, request.method, request.raw_path, request.query, request.headers,
                                 request.now)
        except s3auth.BadSignature:
            return WRONG
        return self.users.get(name, WRONG)

    async def _check(self, cache_key: bytes, user: User | None, password: str, address: str) -> bool | Refused:
        """Run the slow hash for this pair (shared by concurrent requests with the same pair)."""
        if user is None or not user.password_hash:
            return False         # nothing to hash: the failure floor alone makes this take as long
        pending = self._pending.get(cache_key)
        if pending is not None:
            return await asyncio.shield(pending)
        if not await self.throttle.acquire(address):
            return Refused(429, "too many password checks from this address", 1)
        pending = asyncio.get_running_loop().create_future()
        self._pending[cache_key] = pending
        try:
            self.stats["hashes"] += 1
            ok = await asyncio.get_running_loop().run_in_executor(self._pool, verify_password,
                                                                   user.password_hash, password)
            pending.set_result(ok)
        except BaseException as exc:
            pending.set_exception(exc)
            pending.exception()   # retrieved: nobody else may be waiting for it
            raise
        finally:
            del self._pending[cache_key]
            self.throttle.release(address)
        return ok

    async def _wait_out_the_floor(self, started: float) -> None:
        await self._measure_costs()
        left = started + self.failure_floor - self._clock()
        if left > 0:
            await asyncio.sleep(left)

    # --- the failure floor ------------------------------------------------------------------------------

    async def _measure_costs(self) -> None:
        """Time one check of each hash setting not measured yet; the floor follows the slowest."""
        settings = {}
        for user in self.users.values():
            if user.password_hash:
                setting = hash_setting(user.password_hash)
                if setting not in self._costs:
                    settings.setdefault(setting, user.password_hash)
        if not settings:
            return
        if self._measuring is None or self._measuring.done():
            self._measuring = asyncio.get_running_loop().create_task(self._measure(settings))
        await asyncio.shield(self._measuring)

    async def _measure(self, settings: dict[str, str]) -> None:
        loop = asyncio.get_running_loop()
        for setting, stored in settings.items():
            self._costs[setting] = await loop.run_in_executor(self._pool, _time_one_check, stored)
        self.failure_floor = max(MIN_FAILURE_FLOOR, FLOOR_MARGIN * max(self._costs.values()))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        closer = getattr(self.store, "close", None)
        if closer is not None:
            closer()


def _time_one_check(stored: str) -> float:
    """Seconds one verification of ``stored`` takes (the best of two, to leave out a cold start)."""
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        verify_password(stored, secrets.token_urlsafe(12))
        best = min(best, time.perf_counter() - started)
    return best
