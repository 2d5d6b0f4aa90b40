"""Checking credentials against the users: tokens, passwords and their caches, the failure floor, throttling,
certificates, S3 keys, and what is answered while the users database cannot be read.

The store is an in-memory stand-in with the two questions the Authenticator asks (``changed()``, ``all()``);
password hashes are the fast imported kinds ({SHA}, apr1), the clock is the test's and ``asyncio.sleep``
records the failure floor's wait instead of sleeping it.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import gc
import hashlib
import logging
import threading

import pytest

from tlskit.server import auth as auth_module
from tlskit.server.auth import (CACHE_LIMIT, FLOOR_MARGIN, MIN_FAILURE_FLOOR, STALE_GRACE, WRONG, Authenticator,
                                Refused, SignedRequest, hash_setting)
from tlskit.server.credentials import Credential, parse_authorization
from tlskit.server.throttle import LoginThrottle, ThrottleSettings
from tlskit.server.users import StoreUnavailable, User, apr1_md5, token_sha256

UNAVAILABLE = Refused(503, "users database unavailable", 5)
TOKEN = "tlk_0123456789abcdef"
FINGERPRINT = "ab" * 32


def sha(password: str) -> str:
    return "{SHA}" + base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()


def user(name: str, password: str | None = None, tokens=(), **fields) -> User:
    return User(name, frozenset({"GET"}), sha(password) if password else None,
                [token_sha256(t) for t in tokens], **fields)


class Store:
    """What the Authenticator reads of a UserStore; ``fail`` makes the next reads raise it."""

    path = location = "users.test"

    def __init__(self, *users: User) -> None:
        self.users = list(users)
        self.version = 0
        self.seen: int | None = None
        self.fail: Exception | None = None
        self.busy_timeout: int | None = None
        self.polls = 0

    def set(self, *users: User) -> None:
        self.users = list(users)
        self.version += 1

    def set_busy_timeout(self, milliseconds: int) -> None:
        self.busy_timeout = milliseconds

    def changed(self) -> bool:
        self.polls += 1
        if self.fail is not None:
            raise self.fail
        changed, self.seen = self.version != self.seen, self.version
        return changed

    def all(self) -> list[User]:
        return list(self.users)

    def close(self) -> None:
        pass


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def slept(monkeypatch, clock):
    """Every asyncio.sleep(delay) the test's code awaits, instead of sleeping (the clock moves on)."""
    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay, result=None):
        delays.append(delay)
        clock.now += delay
        await real_sleep(0)
        return result

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return delays


@pytest.fixture
def costs(monkeypatch):
    """Hash settings measured for the failure floor, each costing what the test says (default 1 ms)."""
    measured: list[str] = []
    threads: set[str] = set()
    table: dict[str, float] = {}

    def time_one_check(stored: str) -> float:
        measured.append(stored)
        threads.add(threading.current_thread().name)
        return table.get(hash_setting(stored), 0.001)

    monkeypatch.setattr(auth_module, "_time_one_check", time_one_check)
    return type("Costs", (), {"measured": measured, "table": table, "threads": threads})


def make(store: Store, clock: Clock, throttle: LoginThrottle | None = None, **options) -> Authenticator:
    options.setdefault("refresh_interval", 1.0)
    options.setdefault("hash_workers", 1)
    return Authenticator(store, clock=clock, throttle=throttle, **options)


def run(coroutine):
    return asyncio.run(coroutine)


def basic(name: str, secret: str) -> Credential:
    return Credential(secret, name, "basic")


def token(secret: str = TOKEN) -> Credential:
    return Credential(secret, None, "bearer")


def login(authenticator: Authenticator, credential: Credential, address: str = "192.0.2.1", request=None):
    return run(authenticator.authenticate(credential, address, request))


# ---- settings and small parts ---------------------------------------------------------------------

def test_refusals_say_status_reason_and_retry_after():
    assert WRONG == Refused(401, "credentials", 0)
    assert Refused(429, "x").retry_after == 0
    assert (MIN_FAILURE_FLOOR, FLOOR_MARGIN, STALE_GRACE, CACHE_LIMIT) == (0.1, 1.5, 60.0, 100_000)


@pytest.mark.parametrize("stored, setting", [
    ("$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", "$argon2id$v=19$m=65536,t=3,p=4"),
    ("$argon2i$v=19$m=4096,t=2,p=1$c2FsdA$aGFzaA", "$argon2i$v=19$m=4096,t=2,p=1"),
    ("$2y$12$abcdefghijklmnopqrstuv0123456789012345678901234567890", "$2y$12$"),
    ("$2b$04$abcdefghijklmnopqrstuv0123456789012345678901234567890", "$2b$04$"),
    ("$apr1$saltsalt$0123456789abcdefghijkl", "apr1"),
    ("{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=", "{SHA}"),
    ("plaintext", "plain"),
])
def test_hash_setting_is_what_the_cost_depends_on(stored, setting):
    assert hash_setting(stored) == setting


def test_the_store_is_read_with_a_short_busy_timeout_and_an_unreadable_one_refuses_to_start(clock):
    store = Store()
    make(store, clock)
    assert store.busy_timeout == 100     # reads happen on the event loop: never wait long for a writer
    broken = Store()
    broken.fail = StoreUnavailable("users.test is missing")
    with pytest.raises(StoreUnavailable) as caught:
        make(broken, clock)
    assert str(caught.value) == "cannot read the users database users.test"


def test_time_one_check_is_the_best_of_two_checks_with_a_random_password(monkeypatch):
    checked = []
    ticks = iter([10.0, 10.5, 20.0, 20.2, 30.0, 30.1, 40.0, 40.4])
    monkeypatch.setattr(auth_module, "verify_password", lambda stored, password: checked.append((stored, password)))
    monkeypatch.setattr(auth_module.time, "perf_counter", lambda: next(ticks))
    assert auth_module._time_one_check("{SHA}x") == pytest.approx(0.2)
    assert auth_module._time_one_check("{SHA}x") == pytest.approx(0.1)
    assert [stored for stored, _ in checked] == ["{SHA}x"] * 4
    passwords = [password for _, password in checked]
    assert len(set(passwords)) == 4 and all(len(p) == 16 for p in passwords)


def test_time_one_check_times_a_real_verification():
    assert 0 < auth_module._time_one_check(sha("x")) < 1


# ---- tokens ---------------------------------------------------------------------------------------

def test_a_token_finds_its_user_and_a_wrong_one_is_401_at_once(clock, slept):
    alice = user("alice", tokens=[TOKEN])
    authenticator = make(Store(alice), clock)
    assert login(authenticator, token()) is alice
    assert login(authenticator, Credential(TOKEN, None, "x-api-key")) is alice
    assert login(authenticator, token("tlk_wrong")) is WRONG
    assert slept == []                   # tokens cannot be guessed: no floor to wait out
    assert authenticator.stats == {"hashes": 0, "cache_hits": 0}


def test_a_token_in_the_basic_password_field_authenticates_its_user(clock, slept):
    alice = user("alice", password="pw", tokens=[TOKEN, "tlk_second"])
    authenticator = make(Store(alice), clock)
    assert login(authenticator, basic("alice", "tlk_second")) is alice
    assert login(authenticator, basic("alice", "pw")) is alice
    assert login(authenticator, basic("bob", TOKEN)) is WRONG          # the name must be the token's user
    assert authenticator.stats["hashes"] == 1


def test_a_user_added_a_moment_ago_is_found_without_waiting_for_the_refresh(clock, slept):
    store = Store()
    authenticator = make(store, clock, refresh_interval=3600)
    alice = user("alice", password="pw", tokens=[TOKEN])
    store.set(alice)
    assert login(authenticator, token()) is alice
    store.set(user("bob", password="pw"))
    bob = login(authenticator, basic("bob", "pw"))
    assert bob.name == "bob"
    store.set(user("carol"), user("bob", password="pw"))
    assert login(authenticator, Credential(FINGERPRINT, "carol", "certificate")).name == "carol"


def test_the_snapshot_is_reloaded_once_a_refresh_interval_and_drops_removed_credentials(clock, slept, costs):
    alice = user("alice", password="pw", tokens=[TOKEN])
    store = Store(alice)
    authenticator = Authenticator(store, clock=clock, hash_workers=1)      # the default interval: 1 s
    assert login(authenticator, token()) is alice
    assert login(authenticator, basic("alice", "pw")) is alice
    polls = store.polls
    store.set(user("alice", password="new"))
    clock.now += 0.999
    assert login(authenticator, token()) is alice                          # not asked again yet
    assert login(authenticator, basic("alice", "pw")) is alice
    assert store.polls == polls
    clock.now += 0.001
    assert login(authenticator, token()) is WRONG
    assert login(authenticator, basic("alice", "pw")) is WRONG
    assert login(authenticator, basic("alice", "new")).name == "alice"


def test_refresh_says_whether_the_snapshot_changed(clock):
    store = Store(user("alice", tokens=[TOKEN]))
    authenticator = make(store, clock, refresh_interval=10)
    assert authenticator.refresh() is False                    # within the interval: not even asked
    assert authenticator.refresh(check_now=True) is False      # asked: nothing changed
    store.set(user("bob", tokens=[TOKEN]))
    assert authenticator.refresh() is False
    assert authenticator.refresh(check_now=True) is True
    assert list(authenticator.users) == ["bob"]
    assert authenticator.refresh(force=True) is True           # forced: read again whatever changed() says
    clock.now += 10
    store.set(user("carol"))
    assert authenticator.refresh() is True
    assert list(authenticator.users) == ["carol"]


# ---- passwords --------------------------------------------------------------------------------------

def test_concurrent_checks_of_one_pair_share_one_hash_and_later_ones_hit_the_cache(clock, slept, costs):
    alice = user("alice", password="pa:ss")
    authenticator = make(Store(alice), clock, throttle=LoginThrottle(ThrottleSettings(per_address=1, queued=0)))

    async def many(secret: str, count: int):
        return await asyncio.gather(*(authenticator.authenticate(basic("alice", secret), "a") for _ in range(count)))

    assert run(many("pa:ss", 20)) == [alice] * 20
    assert authenticator.stats == {"hashes": 1, "cache_hits": 0}
    assert run(many("pa:ss", 5)) == [alice] * 5
    assert authenticator.stats == {"hashes": 1, "cache_hits": 5}
    assert run(many("wrong", 3)) == [WRONG] * 3
    assert authenticator.stats == {"hashes": 2, "cache_hits": 5}
    assert login(authenticator, basic("alice", "wrong")) is WRONG           # from the failure cache
    assert login(authenticator, basic("alice", "other")) is WRONG
    assert authenticator.stats == {"hashes": 3, "cache_hits": 5}
    # Neither cache holds a clear password, only MACs keyed per process.
    assert all(b"pa:ss" not in key and len(key) == 32 for key in authenticator._good)
    assert all(b"wrong" not in key for key in authenticator._bad)


def test_the_cache_tells_name_and_password_apart(clock, slept, costs):
    """The cached pair is (name, password), not their concatenation."""
    ab = user("ab", password="c")
    authenticator = make(Store(ab, user("a", password="bc")), clock)
    assert login(authenticator, basic("ab", "c")) is ab
    assert login(authenticator, basic("a", "bc")).name == "a"
    assert login(authenticator, basic("a", "b\0c")) is WRONG
    assert authenticator.stats["hashes"] == 3


def test_the_first_read_takes_every_user_even_from_a_store_that_says_nothing_changed(clock, slept):
    alice = user("alice", tokens=[TOKEN])
    store = Store(alice)
    assert store.changed() is True and store.changed() is False     # read once already (another reader)
    assert login(make(store, clock, refresh_interval=3600), token()) is alice


def test_the_caches_are_per_process_keyed(clock, slept, costs):
    store = Store(user("alice", password="pw"))
    first, second = make(store, clock), make(store, clock)
    login(first, basic("alice", "pw"))
    login(second, basic("alice", "pw"))
    assert set(first._good).isdisjoint(second._good)


def test_a_changed_password_is_checked_again(clock, slept, costs):
    store = Store(user("alice", password="old"))
    authenticator = make(store, clock, refresh_interval=0)
    assert login(authenticator, basic("alice", "old")).name == "alice"
    assert login(authenticator, basic("alice", "new")) is WRONG
    store.set(user("alice", password="new"))
    assert login(authenticator, basic("alice", "old")) is WRONG
    assert login(authenticator, basic("alice", "new")).name == "alice"
    assert authenticator.stats["hashes"] == 4


def test_the_caches_are_bounded(clock, slept, costs):
    authenticator = make(Store(user("alice", password="pw"), user("bob", password="pw")), clock)
    authenticator._good.update((n.to_bytes(4, "big"), ("x", "y")) for n in range(CACHE_LIMIT - 1))
    login(authenticator, basic("alice", "pw"))
    assert len(authenticator._good) == CACHE_LIMIT
    login(authenticator, basic("bob", "pw"))                 # full: start again rather than grow
    assert len(authenticator._good) == 1
    assert login(authenticator, basic("bob", "pw")).name == "bob"
    assert authenticator.stats == {"hashes": 2, "cache_hits": 1}
    authenticator._bad.update(n.to_bytes(4, "big") for n in range(CACHE_LIMIT - 1))
    login(authenticator, basic("alice", "wrong1"))
    assert len(authenticator._bad) == CACHE_LIMIT
    login(authenticator, basic("alice", "wrong2"))
    assert len(authenticator._bad) == 1


@pytest.mark.parametrize("workers, threads", [(None, 2), (1, 1), (0, 1), (3, 3)])
def test_hashes_run_on_as_many_threads_of_their_own_as_asked(clock, slept, costs, monkeypatch, workers, threads):
    used = set()
    go = threading.Event()

    def verify(stored: str, password: str) -> bool:
        used.add(threading.current_thread().name)
        go.wait(5)
        return True

    monkeypatch.setattr(auth_module, "verify_password", verify)
    users = [user(f"u{n}", password="pw") for n in range(4)]
    options = {} if workers is None else {"hash_workers": workers}     # None: the default, 2
    authenticator = Authenticator(Store(*users), clock=clock, **options)

    async def all_at_once():
        logins = [asyncio.ensure_future(authenticator.authenticate(basic(f"u{n}", "pw"), f"a{n}")) for n in range(4)]
        while authenticator.stats["hashes"] < 4:       # every check handed to the threads before any ends
            await asyncio.sleep(0)
        go.set()
        return await asyncio.gather(*logins)

    assert [found.name for found in run(all_at_once())] == ["u0", "u1", "u2", "u3"]
    assert used == {f"tlskit-hash_{n}" for n in range(threads)}
    authenticator.close()


def test_a_failing_check_fails_every_waiter_and_the_next_attempt_hashes_again(clock, slept, costs, monkeypatch):
    alice = user("alice", password="pw")
    authenticator = make(Store(alice), clock, throttle=LoginThrottle(ThrottleSettings(per_address=1, queued=0)))
    real_verify = auth_module.verify_password

    def broken(stored: str, password: str) -> bool:
        raise MemoryError("no memory for argon2")

    monkeypatch.setattr(auth_module, "verify_password", broken)

    async def two():
        return await asyncio.gather(*(authenticator.authenticate(basic("alice", "pw"), "a") for _ in range(2)),
                                    return_exceptions=True)

    assert [type(outcome) for outcome in run(two())] == [MemoryError, MemoryError]
    monkeypatch.setattr(auth_module, "verify_password", real_verify)
    assert login(authenticator, basic("alice", "pw"), "a") is alice      # the slot and the pair are free again
    assert authenticator.stats["hashes"] == 2


def test_a_failing_check_with_nobody_else_waiting_logs_nothing_more(clock, slept, costs, monkeypatch, caplog):
    authenticator = make(Store(user("alice", password="pw")), clock)

    def broken(stored: str, password: str) -> bool:
        raise MemoryError("no memory for argon2")

    monkeypatch.setattr(auth_module, "verify_password", broken)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        with pytest.raises(MemoryError):
            login(authenticator, basic("alice", "pw"))
        gc.collect()
    assert "never retrieved" not in caplog.text


def test_an_address_gets_its_slots_and_beyond_them_429_retry_after_1(clock, slept, costs, monkeypatch):
    started = threading.Event()
    go_on = threading.Event()

    def slow(stored: str, password: str) -> bool:
        started.set()
        go_on.wait(5)
        return password == "pw"

    monkeypatch.setattr(auth_module, "verify_password", slow)
    users = [user(f"u{n}", password="pw") for n in range(3)]
    throttle = LoginThrottle(ThrottleSettings(per_address=1, queued=1))
    authenticator = make(Store(*users), clock, throttle=throttle, hash_workers=2)

    async def scenario():
        first = asyncio.ensure_future(authenticator.authenticate(basic("u0", "pw"), "a"))
        second = asyncio.ensure_future(authenticator.authenticate(basic("u1", "pw"), "a"))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        third = await authenticator.authenticate(basic("u2", "pw"), "a")
        other = asyncio.ensure_future(authenticator.authenticate(basic("u2", "pw"), "b"))
        go_on.set()
        return await first, await second, third, await other

    first, second, third, other = run(scenario())
    assert (first.name, second.name, other.name) == ("u0", "u1", "u2")
    assert third == Refused(429, "too many password checks from this address", 1)
    assert throttle._slots == {}


# ---- failures take the same time ------------------------------------------------------------------

def test_every_failed_password_check_waits_out_the_floor_from_when_it_began(clock, slept, costs, monkeypatch):
    alice = user("alice", password="pw")
    authenticator = make(Store(alice, user("tokens-only", tokens=[TOKEN])), clock)
    assert authenticator.failure_floor == MIN_FAILURE_FLOOR
    assert login(authenticator, basic("alice", "wrong")) is WRONG
    assert login(authenticator, basic("nobody", "pw")) is WRONG
    assert login(authenticator, basic("tokens-only", "pw")) is WRONG
    assert slept == pytest.approx([0.1, 0.1, 0.1])          # the cheap {SHA} costs 1 ms: the floor's minimum
    slept.clear()

    def takes(seconds: float):
        def verify(stored: str, password: str) -> bool:
            clock.now += seconds             # the check itself took this long
            return False
        return verify

    monkeypatch.setattr(auth_module, "verify_password", takes(0.03))
    assert login(authenticator, basic("alice", "wrong-2")) is WRONG
    assert slept == [pytest.approx(0.07)]
    slept.clear()
    monkeypatch.setattr(auth_module, "verify_password", takes(0.25))
    assert login(authenticator, basic("alice", "wrong-3")) is WRONG
    assert slept == []                       # already past the floor
    monkeypatch.setattr(auth_module, "verify_password", takes(0.1))
    assert login(authenticator, basic("alice", "wrong-4")) is WRONG
    assert slept == []                       # exactly at the floor: nothing left to wait
    # A repeated failure is answered from the failure cache, like the same for anybody.
    assert login(authenticator, basic("alice", "wrong")) is WRONG
    assert login(authenticator, basic("nobody", "pw")) is WRONG
    assert slept == []


def test_the_floor_is_the_slowest_setting_with_a_margin_measured_once_per_setting(clock, slept, costs):
    costs.table.update({"{SHA}": 0.01, "apr1": 0.2})
    apr1 = apr1_md5(b"right", b"saltsalt")
    store = Store(user("a", password="x"), user("b", password="y"), user("tokens", tokens=[TOKEN]))
    authenticator = make(store, clock, refresh_interval=0)
    assert login(authenticator, basic("a", "wrong")) is WRONG
    assert costs.measured == [sha("x")]                  # one check per setting, the first user's hash
    assert authenticator.failure_floor == MIN_FAILURE_FLOOR
    assert slept == pytest.approx([0.1])
    store.set(*store.users, User("c", frozenset({"GET"}), apr1))
    assert login(authenticator, basic("c", "right")).name == "c"      # a good login measures nothing
    assert login(authenticator, basic("c", "wrong")) is WRONG
    assert costs.measured == [sha("x"), apr1]
    assert authenticator.failure_floor == pytest.approx(0.3)          # 1.5 x 0.2
    assert slept[1:] == [pytest.approx(0.3)]
    assert login(authenticator, basic("b", "wrong")) is WRONG
    assert costs.measured == [sha("x"), apr1]


def test_concurrent_failures_share_one_measurement(clock, slept, costs):
    store = Store(user("a", password="x"), user("b", password="x"))
    authenticator = make(store, clock)

    async def both():
        return await asyncio.gather(authenticator.authenticate(basic("a", "1"), "p"),
                                    authenticator.authenticate(basic("b", "2"), "q"))

    assert run(both()) == [WRONG, WRONG]
    assert costs.measured == [sha("x")]
    assert costs.threads == {"tlskit-hash_0"}          # measuring costs what a check costs: on the hash threads


def test_without_any_password_hash_a_failure_takes_the_minimum_floor(clock, slept, costs):
    authenticator = make(Store(user("tokens", tokens=[TOKEN])), clock)
    assert login(authenticator, basic("nobody", "pw")) is WRONG
    assert costs.measured == [] and slept == pytest.approx([0.1])


# ---- the failure budget ----------------------------------------------------------------------------

def test_the_default_throttle_never_bans(clock, slept, costs):
    authenticator = make(Store(user("alice", password="pw")), clock)
    for attempt in range(30):
        assert login(authenticator, basic("alice", f"wrong-{attempt}")) is WRONG
    assert login(authenticator, basic("alice", "pw")).name == "alice"


def test_spent_failure_budget_is_429_with_retry_after_but_tokens_and_known_pairs_still_get_in(clock, slept, costs):
    alice = user("alice", password="pw", tokens=[TOKEN])
    throttle = LoginThrottle(ThrottleSettings(max_failures=3, window=60, ban=30), clock=clock)
    authenticator = make(Store(alice), clock, throttle=throttle)
    assert login(authenticator, basic("alice", "pw"), "a") is alice
    assert login(authenticator, basic("alice", "wrong"), "a") is WRONG
    assert login(authenticator, basic("alice", "wrong"), "a") is WRONG   # cached failures count too
    assert login(authenticator, basic("alice", "wrong"), "a") is WRONG
    clock.now += 0.5
    hashes = authenticator.stats["hashes"]
    assert login(authenticator, basic("alice", "other"), "a") == Refused(429, "too many failed logins", 30)
    assert login(authenticator, basic("nobody", "pw"), "a") == Refused(429, "too many failed logins", 30)
    assert authenticator.stats["hashes"] == hashes                        # refused before any hashing
    assert login(authenticator, basic("alice", "pw"), "a") is alice
    assert login(authenticator, token(), "a") is alice
    assert login(authenticator, basic("alice", TOKEN), "a") is alice
    assert login(authenticator, basic("alice", "wrong"), "b") is WRONG    # another address is not banned


# ---- client certificates -------------------------------------------------------------------------------

def test_a_client_certificate_is_its_cn_user_if_the_user_pins_none_or_this_one(clock, slept):
    free = user("free")
    pinned = user("pinned", cert_fingerprints=["cd" * 32, FINGERPRINT])
    authenticator = make(Store(free, pinned), clock)
    assert login(authenticator, Credential(FINGERPRINT, "free", "certificate")) is free
    assert login(authenticator, Credential(FINGERPRINT, "pinned", "certificate")) is pinned
    assert login(authenticator, Credential("ef" * 32, "pinned", "certificate")) is WRONG
    assert login(authenticator, Credential(FINGERPRINT, "nobody", "certificate")) is WRONG
    assert slept == []


# ---- S3-style keys ---------------------------------------------------------------------------------------

def signed(access_key: str, secret: str, signer: str = "s3v4", method: str = "GET", path: str = "/api/x",
           query: str = "limit=1"):
    from botocore.auth import HmacV1Auth, S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=f"https://localhost{path}?{query}", data=b"")
    credentials = Credentials(access_key, secret)
    (S3SigV4Auth(credentials, "s3", "us-east-1") if signer == "s3v4" else HmacV1Auth(credentials)).add_auth(request)
    headers = [(b"host", b"localhost")] + [(name.lower().encode(), value.encode() if isinstance(value, str) else value)
                                           for name, value in request.headers.items()]
    authorization = dict(headers)[b"authorization"]
    return parse_authorization(authorization), SignedRequest(
        method, path.encode(), query.encode(), headers, b"", dt.datetime.now(dt.timezone.utc))


@pytest.mark.parametrize("signer", ["s3v4", "v2"])
def test_a_signed_mode_key_needs_its_secret_to_have_signed_this_request(clock, slept, signer):
    owner = user("owner", s3_keys={"AKIDSIGNED": "the-secret"})
    authenticator = make(Store(owner), clock)
    credential, request = signed("AKIDSIGNED", "the-secret", signer)
    assert authenticator.is_signed_key(credential)
    assert login(authenticator, credential, request=request) is owner
    assert login(authenticator, credential) is WRONG                        # nothing to check it against
    forged, _ = signed("AKIDSIGNED", "not-the-secret", signer)
    assert login(authenticator, forged, request=request) is WRONG
    _, other_request = signed("AKIDSIGNED", "the-secret", signer, method="DELETE")
    assert login(authenticator, credential, request=other_request) is WRONG
    unknown, unknown_request = signed("AKIDUNKNOWN", "the-secret", signer)
    assert login(authenticator, unknown, request=unknown_request) is WRONG
    assert slept == []


def test_a_v4_signature_covers_the_body_it_declares():
    clock = Clock()
    owner = user("owner", s3_keys={"AKIDSIGNED": "the-secret"})
    authenticator = make(Store(owner), clock)
    credential, request = signed("AKIDSIGNED", "the-secret")
    assert login(authenticator, credential, request=request) is owner
    tampered = dataclasses.replace(request, body=b"not the signed body")
    assert login(authenticator, credential, request=tampered) is WRONG


def test_a_signed_key_whose_user_went_away_is_401(clock, slept):
    authenticator = make(Store(user("owner", s3_keys={"AKIDSIGNED": "the-secret"})), clock)
    credential, request = signed("AKIDSIGNED", "the-secret")
    del authenticator.users["owner"]
    assert login(authenticator, credential, request=request) is WRONG


def test_key_mode_a_token_as_the_access_key_checks_no_signature(clock, slept):
    keyed = user("keyed", tokens=[TOKEN], s3_keys={"AKIDSIGNED": "the-secret"})
    authenticator = make(Store(keyed), clock)
    credential, _ = signed(TOKEN, "any secret")
    assert not authenticator.is_signed_key(credential)
    assert login(authenticator, credential) is keyed
    assert not authenticator.is_signed_key(token("AKIDUNKNOWN"))
    tokened = make(Store(user("both", tokens=["AKIDSIGNED"], s3_keys={"AKIDSIGNED": "s"})), clock)
    assert not tokened.is_signed_key(token("AKIDSIGNED"))                   # a token is a token first


# ---- when the users database cannot be read ------------------------------------------------------------

def test_an_unreadable_database_answers_from_the_last_good_snapshot_for_a_minute_then_503(clock, slept, costs,
                                                                                           caplog):
    alice = user("alice", password="pw", tokens=[TOKEN], cert_fingerprints=[FINGERPRINT])
    owner = user("owner", s3_keys={"AKIDSIGNED": "the-secret"})
    store = Store(alice, owner)
    authenticator = make(store, clock, refresh_interval=0)
    s3, request = signed("AKIDSIGNED", "the-secret")
    certificate = Credential(FINGERPRINT, "alice", "certificate")
    for credential in (token(), basic("alice", "pw"), certificate):
        assert login(authenticator, credential) is alice
    assert login(authenticator, s3, request=request) is owner
    store.fail = StoreUnavailable("users.test is missing")
    first = clock.now                            # when the database is first found unreadable
    with caplog.at_level(logging.WARNING, logger="tlskit.serve"):
        assert login(authenticator, token()) is alice
        assert login(authenticator, basic("alice", "pw")) is alice
        assert login(authenticator, certificate) is alice
        assert login(authenticator, s3, request=request) is owner
        # What the last snapshot does not hold may be in the database: 503, never 401.
        assert login(authenticator, token("tlk_unknown")) == UNAVAILABLE
        assert login(authenticator, basic("nobody", "pw")) == UNAVAILABLE
        assert login(authenticator, Credential(FINGERPRINT, "nobody", "certificate")) == UNAVAILABLE
        unknown_s3, unknown_request = signed("AKIDUNKNOWN", "the-secret")
        assert login(authenticator, unknown_s3, request=unknown_request) == UNAVAILABLE
        # A known name with a wrong password is still just wrong.
        assert login(authenticator, basic("alice", "wrong")) is WRONG
        clock.now = first + 30
        store.fail = RuntimeError("disk I/O error")
        assert login(authenticator, token()) is alice
        clock.now = first + 60                   # 60 s since it first failed: still the grace
        assert login(authenticator, basic("alice", "pw")) is alice
        clock.now = first + 60.001
        for credential in (token(), basic("alice", "pw"), certificate):
            assert login(authenticator, credential) == UNAVAILABLE
        assert login(authenticator, s3, request=request) == UNAVAILABLE
        store.fail = None
        store.set(alice, owner)
        assert login(authenticator, token()) is not UNAVAILABLE
        assert login(authenticator, basic("nobody", "pw")) is WRONG
    messages = [(record.name, record.levelname, record.getMessage()) for record in caplog.records]
    assert messages == [
        ("tlskit.serve", "ERROR", "users database unreadable (users.test is missing): answering 503 for what the "
                                  "last good copy does not hold, and for everything after 60 s"),
        ("tlskit.serve", "WARNING", "users database users.test readable again"),
    ]


def test_a_database_back_unchanged_is_readable_again(clock, slept, caplog):
    alice = user("alice", tokens=[TOKEN])
    store = Store(alice)
    authenticator = make(store, clock, refresh_interval=0)
    store.fail = StoreUnavailable("users.test: disk I/O error")
    assert login(authenticator, token("tlk_unknown")) == UNAVAILABLE
    store.fail = None
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tlskit.serve"):
        assert login(authenticator, token("tlk_unknown")) is WRONG
    assert authenticator.unavailable_since is None
    assert [record.getMessage() for record in caplog.records] == ["users database users.test readable again"]


def test_a_locked_database_keeps_the_snapshot_without_503(clock, slept, costs, caplog):
    store = Store(user("alice", password="pw"))
    authenticator = make(store, clock, refresh_interval=0)
    with caplog.at_level(logging.WARNING, logger="tlskit.serve"):
        for message in ("database is locked", "database table is busy"):
            store.fail = RuntimeError(message)
            assert authenticator.refresh() is False
            assert login(authenticator, basic("nobody", "pw")) is WRONG
    assert caplog.records == []
    store.fail = RuntimeError("file is not\n   a database")
    with caplog.at_level(logging.WARNING, logger="tlskit.serve"):
        assert authenticator.refresh() is False
        assert login(authenticator, basic("nobody", "pw")) == UNAVAILABLE
    assert [record.getMessage() for record in caplog.records] == [
        "users database unreadable (file is not a database): answering 503 for what the last good copy does not "
        "hold, and for everything after 60 s"]


def test_a_database_locked_at_start_serves_an_empty_snapshot_until_it_can_be_read(clock, slept, costs):
    alice = user("alice", password="pw", tokens=[TOKEN], s3_keys={"AKIDSIGNED": "s"})
    store = Store(alice)
    store.fail = RuntimeError("database is locked")
    authenticator = make(store, clock, refresh_interval=0)
    assert login(authenticator, token()) is WRONG
    assert login(authenticator, basic("alice", "pw")) is WRONG
    assert login(authenticator, Credential(FINGERPRINT, "alice", "certificate")) is WRONG
    assert not authenticator.is_signed_key(token("AKIDSIGNED"))
    store.fail = None
    assert login(authenticator, token()) is alice
    assert authenticator.is_signed_key(token("AKIDSIGNED"))


def test_the_grace_counts_from_the_first_failed_read(clock, slept):
    store = Store(user("alice", tokens=[TOKEN]))
    authenticator = make(store, clock, refresh_interval=0)
    login(authenticator, token())
    store.fail = StoreUnavailable("gone")
    assert authenticator.refresh() is False
    first = clock.now
    clock.now += 45
    assert authenticator.refresh() is False
    clock.now = first + 60
    assert login(authenticator, token()).name == "alice"
    clock.now = first + 60.5
    assert login(authenticator, token()) == UNAVAILABLE


def test_close_waits_for_no_running_hash_and_cancels_the_queued_ones(clock, slept, costs, monkeypatch):
    started, go, finished = threading.Event(), threading.Event(), threading.Event()

    def verify(stored: str, password: str) -> bool:
        started.set()
        go.wait(1)
        finished.set()
        return True

    monkeypatch.setattr(auth_module, "verify_password", verify)
    authenticator = make(Store(user("alice", password="pw"), user("bob", password="pw"), user("carol", tokens=[TOKEN])),
                         clock)

    async def scenario():
        running = asyncio.ensure_future(authenticator.authenticate(basic("alice", "pw"), "a"))
        queued = asyncio.ensure_future(authenticator.authenticate(basic("bob", "pw"), "b"))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        authenticator.close()
        closed_before_the_hash_ended = not finished.is_set()
        go.set()
        outcomes = await asyncio.gather(running, queued, return_exceptions=True)
        return closed_before_the_hash_ended, outcomes

    closed_before_the_hash_ended, (running, queued) = run(scenario())
    assert closed_before_the_hash_ended
    assert running.name == "alice"
    assert isinstance(queued, asyncio.CancelledError)
    with pytest.raises(RuntimeError, match="shutdown"):
        login(authenticator, basic("bob", "pw"))                # no hashing after close
    assert login(authenticator, token()).name == "carol"       # tokens need no thread


# ---- --auth-cache-ttl: what still gets in while the store cannot be read -----------------------------

def test_while_the_store_is_down_only_credentials_it_vouched_for_within_the_ttl_get_in(clock, slept, costs, caplog):
    alice = user("alice", password="pw", tokens=[TOKEN, "tlk_never_used"])
    store = Store(alice)
    authenticator = make(store, clock, refresh_interval=0, auth_cache_ttl=5)
    start = clock.now
    assert login(authenticator, token()) is alice
    clock.now = start + 2
    assert login(authenticator, basic("alice", "pw")) is alice
    store.fail = StoreUnavailable("users.test is missing")
    with caplog.at_level(logging.ERROR, logger="tlskit.serve"):
        clock.now = start + 3
        assert login(authenticator, token()) is alice
    assert [record.getMessage() for record in caplog.records] == [
        "users database unreadable (users.test is missing): answering 503 for what the last good copy does not "
        "hold, and for everything after 5 s"]
    # In the snapshot, but never vouched for by the live store: it may have been removed meanwhile.
    assert login(authenticator, token("tlk_never_used")) == UNAVAILABLE
    assert login(authenticator, basic("alice", "tlk_never_used")) == UNAVAILABLE
    assert login(authenticator, Credential(TOKEN, None, "x-api-key")) == UNAVAILABLE   # vouched as a bearer
    clock.now = start + 5
    assert login(authenticator, token()) is alice                      # 5 s since the store vouched: the TTL
    clock.now = start + 5.001
    assert login(authenticator, token()) == UNAVAILABLE
    assert login(authenticator, basic("alice", "pw")) is alice         # vouched 2 s later
    clock.now = start + 7.001
    assert login(authenticator, basic("alice", "pw")) == UNAVAILABLE


def test_a_credential_used_again_while_the_store_is_up_is_vouched_for_anew(clock, slept):
    alice = user("alice", tokens=[TOKEN])
    store = Store(alice)
    authenticator = make(store, clock, refresh_interval=0, auth_cache_ttl=10)
    start = clock.now
    assert login(authenticator, token()) is alice
    clock.now = start + 8
    assert login(authenticator, token()) is alice
    store.fail = StoreUnavailable("gone")
    clock.now = start + 9
    assert login(authenticator, token("tlk_unknown")) == UNAVAILABLE   # down since start + 9
    clock.now = start + 18
    assert login(authenticator, token()) is alice
    clock.now = start + 18.5
    assert login(authenticator, token()) == UNAVAILABLE


def test_the_ttl_is_also_how_long_the_snapshot_answers_at_all(clock, slept):
    alice = user("alice", tokens=[TOKEN])
    store = Store(alice)
    authenticator = make(store, clock, refresh_interval=0, auth_cache_ttl=2.5)
    store.fail = StoreUnavailable("gone")
    assert login(authenticator, token("tlk_unknown")) == UNAVAILABLE
    store.fail = None
    store.set(alice)
    assert login(authenticator, token()) is alice                       # vouched now, store up again
    store.fail = StoreUnavailable("gone")
    down = clock.now
    clock.now = down + 2.5
    assert login(authenticator, token()) is alice
    clock.now = down + 2.501
    assert login(authenticator, token()) == UNAVAILABLE


def test_the_vouched_credentials_are_bounded(clock, slept):
    alice = user("alice", tokens=[TOKEN, "tlk_other"])
    authenticator = make(Store(alice), clock)
    authenticator._verified.update((n.to_bytes(4, "big"), clock.now) for n in range(CACHE_LIMIT - 1))
    login(authenticator, token())
    assert len(authenticator._verified) == CACHE_LIMIT
    login(authenticator, token("tlk_other"))                 # full: start again rather than grow
    assert len(authenticator._verified) == 1


def test_close_closes_the_store_when_it_can_be_closed(clock):
    closed = []
    store = Store()
    store.close = lambda: closed.append(True)
    make(store, clock).close()
    assert closed == [True]
    bare = Store()
    bare.close = None
    make(bare, clock).close()


def test_past_the_grace_no_password_is_hashed_at_all(clock, slept, costs):
    store = Store(user("alice", "pw"))
    authenticator = make(store, clock, refresh_interval=0)
    store.fail = StoreUnavailable("gone")
    authenticator.refresh()
    clock.now += 61
    assert login(authenticator, basic("alice", "pw")) == UNAVAILABLE
    assert authenticator.stats["hashes"] == 0


def test_a_store_that_polls_on_its_own_schedule_sets_the_refresh_interval(clock):
    store = Store()
    store.refresh_interval = 0.25
    assert make(store, clock, refresh_interval=7).refresh_interval == 0.25
    assert make(Store(), clock, refresh_interval=7).refresh_interval == 7


def test_close_works_for_a_store_without_close(clock):
    class Closeless(Store):
        close = property(lambda self: (_ for _ in ()).throw(AttributeError("close")))

    make(Closeless(), clock).close()
