"""Per-user limits: the limiters' arithmetic with a controlled clock, for the in-process limiter and the one
shared by worker processes (SQLite); exact counts, exact Retry-After and RateLimit-* figures."""

from __future__ import annotations

import os
import sqlite3
import threading

import pytest

from tlskit.errors import InputError
from tlskit.server import limits_redis
from tlskit.server.limits import (
    WINDOW_SECONDS, Decision, Limits, MemoryLimiter, SharedLimiter, check_limits_store, open_limiter,
)
from tlskit.server.stores import LimitsStore, RedisUrl


@pytest.fixture(params=["memory", "shared"])
def make_limiter(request, tmp_path):
    """Every rule holds for the in-process limiter and for the one shared by worker processes."""
    if request.param == "memory":
        return MemoryLimiter
    return lambda clock=None: SharedLimiter(tmp_path / "limits.sqlite", **({"clock": clock} if clock else {}))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_hourly_limit_admits_exactly_n_then_refuses_with_retry_after(make_limiter):
    clock = Clock()
    limiter = make_limiter(clock)
    limits = Limits(max_requests=5)
    decisions = []
    for _ in range(7):
        decision = limiter.acquire("alice", limits)
        decisions.append(decision)
        if decision.allowed:
            limiter.release("alice")
        clock.now += 10
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    refused = decisions[5]
    # The first request (t=1000) leaves the window at t=4600; the refusal came at t=1050.
    assert refused.retry_after == int(WINDOW_SECONDS) - 50
    headers = dict(refused.headers())
    assert headers[b"retry-after"] == str(int(WINDOW_SECONDS) - 50).encode()
    assert headers[b"ratelimit-limit"] == b"5"
    assert headers[b"ratelimit-remaining"] == b"0"
    assert headers[b"ratelimit-policy"] == b"5;w=3600"
    assert b"retry-after" not in dict(decisions[0].headers())


def test_ratelimit_reset_counts_down_to_when_the_oldest_request_leaves_the_window(make_limiter):
    clock = Clock()
    limiter = make_limiter(clock)
    limits = Limits(max_requests=3)
    resets = []
    for _ in range(4):
        decision = limiter.acquire("alice", limits)
        if decision.allowed:
            limiter.release("alice")
        resets.append(decision.reset)
        clock.now += 25.5
    # The first request (t=1000) leaves the window at t=4600: asked at t=1000, 1025.5, 1051, 1076.5.
    assert resets == [3600, 3575, 3549, 3524]
    assert dict(limiter.acquire("alice", limits).headers())[b"ratelimit-reset"] == b"3498"
    clock.now = 1000.0 + WINDOW_SECONDS + 1  # the first left; the second (t=1025.5) is now the oldest
    decision = limiter.acquire("alice", limits)
    assert decision.allowed and decision.reset == 25


def test_window_rolls_one_request_at_a_time(make_limiter):
    clock = Clock()
    limiter = make_limiter(clock)
    limits = Limits(max_requests=2)
    assert limiter.acquire("a", limits).allowed
    clock.now += 100
    assert limiter.acquire("a", limits).allowed
    assert not limiter.acquire("a", limits).allowed
    clock.now = 1000.0 + WINDOW_SECONDS  # the first request just left the window
    assert limiter.acquire("a", limits).allowed
    assert not limiter.acquire("a", limits).allowed
    clock.now += 100
    assert limiter.acquire("a", limits).allowed


def test_refused_requests_do_not_use_the_budget(make_limiter):
    clock = Clock()
    limiter = make_limiter(clock)
    limits = Limits(max_requests=3, max_concurrent=1)
    assert limiter.acquire("a", limits).allowed
    for _ in range(10):
        decision = limiter.acquire("a", limits)  # refused for concurrency
        assert not decision.allowed and decision.reason == "concurrent requests"
        assert decision.retry_after == 1
    limiter.release("a")
    assert limiter.acquire("a", limits).remaining == 1


def test_concurrent_limit_is_exact_and_slots_come_back(make_limiter):
    limiter = make_limiter()
    limits = Limits(max_concurrent=2)
    outcomes = [limiter.acquire("bob", limits).allowed for _ in range(5)]
    assert outcomes == [True, True, False, False, False]
    assert limiter.in_flight("bob") == 2
    limiter.release("bob")
    assert limiter.acquire("bob", limits).allowed
    assert not limiter.acquire("bob", limits).allowed
    # Another user has their own slots.
    assert limiter.acquire("carol", limits).allowed


def test_threads_never_get_n_plus_one(make_limiter):
    import threading

    limiter = make_limiter()
    limits = Limits(max_requests=50, max_concurrent=0)
    admitted = []
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()
        for _ in range(100):
            if limiter.acquire("t", limits).allowed:
                admitted.append(1)
                limiter.release("t")

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 50


def test_unlimited_and_user_overrides():
    defaults = Limits(max_requests=100, max_concurrent=4)
    assert Limits.resolve(None, None, defaults) == defaults
    assert Limits.resolve(0, None, defaults) == Limits(0, 4)
    assert Limits.resolve(5, 0, defaults) == Limits(5, 0)
    limiter = MemoryLimiter()
    for _ in range(1000):
        decision = limiter.acquire("free", Limits())
        assert decision.allowed and decision.headers() == []




# A pid above Linux's largest pid_max: kill() says "no such process", as for a worker that died.
DEAD_PID = 2**22 + 1


def test_the_window_is_one_hour():
    assert WINDOW_SECONDS == 3600.0


def test_unlimited_means_both_limits_are_zero():
    assert Limits().unlimited
    assert not Limits(max_requests=1).unlimited
    assert not Limits(max_concurrent=1).unlimited
    assert not Limits(2, 3).unlimited


def test_decision_headers_are_exactly_the_ratelimit_fields_and_retry_after():
    assert Decision(True).headers() == []
    assert Decision(True, limit=10, remaining=4, reset=120).headers() == [
        (b"ratelimit-limit", b"10"), (b"ratelimit-remaining", b"4"), (b"ratelimit-reset", b"120"),
        (b"ratelimit-policy", b"10;w=3600")]
    assert Decision(False, retry_after=7, limit=2, reset=7).headers() == [
        (b"ratelimit-limit", b"2"), (b"ratelimit-remaining", b"0"), (b"ratelimit-reset", b"7"),
        (b"ratelimit-policy", b"2;w=3600"), (b"retry-after", b"7")]
    # Retry-After: 0 would invite an immediate retry that is refused again.
    assert Decision(False, retry_after=0).headers() == [(b"retry-after", b"1")]
    assert Decision(False, retry_after=1).headers() == [(b"retry-after", b"1")]
    assert Decision(False, retry_after=2).headers() == [(b"retry-after", b"2")]


def test_ratelimit_reset_is_the_seconds_until_the_oldest_counted_request_leaves(make_limiter):
    clock = Clock()
    limiter = make_limiter(clock)
    limits = Limits(max_requests=3)
    seen = []
    for now in (1000.0, 1000.25, 1010.75, 1100.5):
        clock.now = now
        decision = limiter.acquire("a", limits)
        seen.append((decision.allowed, decision.remaining, decision.reset, decision.retry_after))
        if decision.allowed:
            limiter.release("a")
    # reset = ceil(oldest + 3600 - now), the oldest being t=1000 throughout.
    assert seen == [(True, 2, 3600, 0), (True, 1, 3600, 0), (True, 0, 3590, 0), (False, 0, 3500, 3500)]
    clock.now = 1100.5
    assert limiter.acquire("a", limits).headers() == [
        (b"ratelimit-limit", b"3"), (b"ratelimit-remaining", b"0"), (b"ratelimit-reset", b"3500"),
        (b"ratelimit-policy", b"3;w=3600"), (b"retry-after", b"3500")]
    clock.now = 4600.0  # t=1000 leaves at exactly one hour; t=1000.25 is now the oldest
    decision = limiter.acquire("a", limits)
    assert (decision.allowed, decision.remaining, decision.reset) == (True, 0, 1)
    limiter.release("a")
    clock.now = 4601.0  # t=1000.25 has left too; t=1010.75 is the oldest
    decision = limiter.acquire("a", limits)
    assert (decision.allowed, decision.remaining, decision.reset) == (True, 0, 10)
    limiter.release("a")
    clock.now = 4605.0
    refused = limiter.acquire("a", limits)
    assert (refused.allowed, refused.reason, refused.retry_after, refused.reset) == (False, "requests per hour", 6, 6)


def test_a_full_set_of_slots_is_refused_before_a_spent_hour(make_limiter):
    clock = Clock()
    limiter = make_limiter(clock)
    limits = Limits(max_requests=1, max_concurrent=1)
    assert limiter.acquire("a", limits).allowed
    clock.now += 100
    both = limiter.acquire("a", limits)
    assert (both.allowed, both.reason, both.retry_after) == (False, "concurrent requests", 1)
    assert (both.limit, both.remaining, both.reset) == (1, 0, 3500)
    limiter.release("a")
    hour = limiter.acquire("a", limits)
    assert (hour.allowed, hour.reason, hour.retry_after) == (False, "requests per hour", 3500)
    assert limiter.in_flight("a") == 0


def test_a_request_running_longer_than_the_hour_holds_its_slot(make_limiter):
    clock = Clock()
    limiter = make_limiter(clock)
    limits = Limits(max_requests=5, max_concurrent=1)
    assert limiter.acquire("a", limits).allowed
    clock.now += WINDOW_SECONDS + 1  # its admission left the window; the request still runs
    refused = limiter.acquire("a", limits)
    assert (refused.allowed, refused.reason, refused.retry_after) == (False, "concurrent requests", 1)
    assert (refused.limit, refused.remaining, refused.reset) == (5, 5, 0)


def test_a_lowered_limit_leaves_nothing_remaining_never_less(make_limiter):
    clock = Clock()
    limiter = make_limiter(clock)
    for _ in range(3):
        assert limiter.acquire("a", Limits(max_requests=5)).allowed
        limiter.release("a")
    lowered = limiter.acquire("a", Limits(max_requests=2))
    assert (lowered.allowed, lowered.limit, lowered.remaining, lowered.retry_after) == (False, 2, 0, 3600)


def test_limits_count_only_what_is_limited(make_limiter):
    clock = Clock()
    limiter = make_limiter(clock)
    hourly = Limits(max_requests=100)
    running = [limiter.acquire("h", hourly) for _ in range(20)]
    assert all(d.allowed for d in running) and running[-1].remaining == 80
    assert {(d.reason, d.retry_after) for d in running} == {("", 0)}  # an admission has no refusal reason
    assert limiter.in_flight("h") == 20  # counted (a concurrent limit may come), never refused for it
    concurrent = Limits(max_concurrent=2)
    admitted = limiter.acquire("c", concurrent)
    assert admitted == Decision(True)
    limiter.acquire("c", concurrent)
    refused = limiter.acquire("c", concurrent)
    assert refused.headers() == [(b"retry-after", b"1")]
    assert (refused.allowed, refused.reason, refused.retry_after) == (False, "concurrent requests", 1)
    for _ in range(200):
        assert limiter.acquire("c", Limits()).allowed  # unlimited: not counted, not refused
    assert limiter.in_flight("c") == 2


def test_releasing_an_uncounted_request_changes_nothing(make_limiter):
    limiter = make_limiter(Clock())
    assert limiter.acquire("free", Limits()).allowed
    limiter.release("free")
    assert limiter.in_flight("free") == 0
    limits = Limits(max_concurrent=1)
    assert limiter.acquire("u", limits).allowed
    limiter.release("u")
    limiter.release("u")  # one too many: the slot count stays at zero, not below
    assert limiter.acquire("u", limits).allowed
    assert not limiter.acquire("u", limits).allowed


def test_the_memory_limiter_forgets_users_with_nothing_in_flight():
    limiter = MemoryLimiter(Clock())
    limits = Limits(max_concurrent=3)
    for user in ("a", "b"):
        limiter.acquire(user, limits)
        limiter.acquire(user, limits)
    limiter.release("a")
    assert (limiter.in_flight("a"), limiter.in_flight("b")) == (1, 2)
    for user in ("a", "b", "b"):
        limiter.release(user)
    # A server that has seen a million users keeps no counter for those not in a request right now.
    assert limiter._in_flight == {}


def test_limiters_on_one_file_count_together_and_each_releases_its_own(tmp_path):
    clock = Clock()
    path = tmp_path / "limits.sqlite"
    one, two = SharedLimiter(path, clock), SharedLimiter(path, clock)
    limits = Limits(max_requests=4, max_concurrent=2)
    assert one.acquire("u", limits).remaining == 3
    assert two.acquire("u", limits).remaining == 2
    assert not one.acquire("u", limits).allowed
    assert one.in_flight("u") == two.in_flight("u") == 2
    two.release("u")
    two.release("u")  # two holds no more: the other worker's request keeps its slot
    assert one.in_flight("u") == 1
    assert one.acquire("u", limits).remaining == 1
    one.release("u")
    one.release("u")
    clock.now += 10
    last = two.acquire("u", limits)
    assert (last.remaining, last.reset) == (0, 3590)
    # A restarted server (a new limiter on the same file) still counts the hour's four admissions.
    again = SharedLimiter(path, clock).acquire("u", limits)
    assert (again.allowed, again.reason, again.retry_after) == (False, "requests per hour", 3590)


def test_in_flight_rows_of_dead_workers_are_cleared_at_start(tmp_path):
    path = tmp_path / "limits.sqlite"
    SharedLimiter(path)
    db = sqlite3.connect(path)
    db.executemany("INSERT INTO in_flight (user, pid, n) VALUES (?, ?, ?)",
                   [("u", DEAD_PID, 2), ("u", 1, 1), ("v", DEAD_PID, 1)])  # pid 1 is always alive
    db.commit()
    db.close()
    limiter = SharedLimiter(path)
    assert (limiter.in_flight("u"), limiter.in_flight("v")) == (1, 0)
    assert not limiter.acquire("u", Limits(max_concurrent=1)).allowed  # the live worker's slot holds
    assert limiter.acquire("u", Limits(max_concurrent=2)).allowed


def test_the_shared_file_is_in_wal_mode_and_not_fsynced(tmp_path):
    limiter = SharedLimiter(tmp_path / "limits.sqlite")
    assert limiter._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert limiter._db.execute("PRAGMA synchronous").fetchone()[0] == 0


def test_processes_opening_a_new_file_at_once_all_open_it(tmp_path):
    """Two processes open a fresh file at the same moment (two instances sharing sqlite:PATH, or the
    workers of a server); SQLite refuses one of two WAL switches that overlap at once (about one start in
    fifteen here), and that process used to fail."""
    rounds, failed = 200, []
    for round_ in range(rounds):
        path = tmp_path / f"limits-{round_}.sqlite"
        go_read, go_write = os.pipe()
        children = []
        for _ in range(2):
            pid = os.fork()
            if pid == 0:                                 # pragma: no cover - a forked child
                code = 1
                try:
                    os.close(go_write)
                    os.read(go_read, 1)                  # both start together, at the close below
                    SharedLimiter(path)
                    code = 0
                finally:
                    os._exit(code)
            children.append(pid)
        os.close(go_read)
        os.close(go_write)
        failed += [round_ for pid in children if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0]
    assert failed == []


def test_a_failed_decision_is_rolled_back(tmp_path, monkeypatch):
    clock = Clock()
    limiter = SharedLimiter(tmp_path / "limits.sqlite", clock)
    decide = limiter._decide

    def decide_then_fail(db, user, limits, now):
        decide(db, user, limits, now)
        raise RuntimeError("the worker is interrupted")

    monkeypatch.setattr(limiter, "_decide", decide_then_fail)
    with pytest.raises(RuntimeError, match="interrupted"):
        limiter.acquire("u", Limits(max_requests=1))
    monkeypatch.undo()
    decision = limiter.acquire("u", Limits(max_requests=1))
    assert (decision.allowed, decision.remaining) == (True, 0)


def test_a_refusal_is_a_429_unless_the_store_says_otherwise():
    assert Decision(False).status == 429
    assert Decision(True).lease is None


def test_open_limiter_by_default_counts_in_memory_for_one_worker_and_in_the_state_dir_for_more(tmp_path):
    assert type(open_limiter(None, tmp_path)) is MemoryLimiter
    assert type(open_limiter(None, tmp_path, workers=1)) is MemoryLimiter
    shared = open_limiter(None, tmp_path, workers=2)
    assert type(shared) is SharedLimiter and (tmp_path / "limits.sqlite").is_file()
    assert type(open_limiter(LimitsStore("memory"), tmp_path, workers=4)) is MemoryLimiter


def test_open_limiter_opens_the_store_it_is_given(tmp_path):
    path = tmp_path / "elsewhere.sqlite"
    limiter = open_limiter(LimitsStore("sqlite", path=path), tmp_path / "state")
    assert type(limiter) is SharedLimiter and path.is_file()
    assert not (tmp_path / "state").exists()
    redis = open_limiter(LimitsStore("redis", redis=RedisUrl("redis://127.0.0.1:1/0")), tmp_path, workers=3,
                         fail="closed", lease=4)
    assert type(redis) is limits_redis.RedisLimiter  # opened lazily: nothing listens on port 1
    assert (redis.url, redis.fail, redis.lease) == (RedisUrl("redis://127.0.0.1:1/0"), "closed", 4.0)
    default = open_limiter(LimitsStore("redis", redis=RedisUrl("redis://127.0.0.1:1/0")), tmp_path)
    assert (default.fail, default.lease) == ("open", 15.0)


def test_an_sqlite_store_that_cannot_be_opened_says_what_to_do(tmp_path, cli_spelling):
    path = tmp_path / "missing" / "limits.sqlite"
    with pytest.raises(InputError) as excinfo:
        open_limiter(LimitsStore("sqlite", path=path), tmp_path)
    assert str(excinfo.value) == (f"cannot open the limits store {path} (unable to open database file); "
                                  "give --limits-store sqlite:PATH in a directory this user can write")
    with pytest.raises(InputError) as excinfo:
        open_limiter(None, tmp_path / "no-state", workers=2)
    assert str(excinfo.value).startswith(f"cannot open the limits store {tmp_path / 'no-state' / 'limits.sqlite'} (")


def test_the_store_is_checked_before_the_server_listens(tmp_path, monkeypatch, cli_spelling):
    """Redis is asked, an SQLite file is made (once, before any worker opens it), memory needs nothing."""
    checked = []
    monkeypatch.setattr(limits_redis, "check_redis", checked.append)
    url = RedisUrl("redis://127.0.0.1:1/0")
    check_limits_store(None, tmp_path)
    check_limits_store(LimitsStore("memory"), tmp_path, workers=2)
    assert list(tmp_path.iterdir()) == [] and checked == []
    check_limits_store(None, tmp_path, workers=2)
    check_limits_store(LimitsStore("sqlite", path=tmp_path / "l.sqlite"), tmp_path)
    for made in (tmp_path / "limits.sqlite", tmp_path / "l.sqlite"):
        assert sqlite3.connect(made).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert checked == []
    check_limits_store(LimitsStore("redis", redis=url), tmp_path)
    assert checked == [url]
    with pytest.raises(InputError, match="cannot open the limits store .*; give --limits-store sqlite:PATH"):
        check_limits_store(LimitsStore("sqlite", path=tmp_path / "missing" / "l.sqlite"), tmp_path)
