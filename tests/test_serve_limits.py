"""Per-user limits: the limiter's arithmetic (with a controlled clock), then the real server with curl."""

from __future__ import annotations

import pytest

from tlskit.server.limits import WINDOW_SECONDS, Limits, MemoryLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_hourly_limit_admits_exactly_n_then_refuses_with_retry_after():
    clock = Clock()
    limiter = MemoryLimiter(clock)
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


def test_window_rolls_one_request_at_a_time():
    clock = Clock()
    limiter = MemoryLimiter(clock)
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


def test_refused_requests_do_not_use_the_budget():
    clock = Clock()
    limiter = MemoryLimiter(clock)
    limits = Limits(max_requests=3, max_concurrent=1)
    assert limiter.acquire("a", limits).allowed
    for _ in range(10):
        decision = limiter.acquire("a", limits)  # refused for concurrency
        assert not decision.allowed and decision.reason == "concurrent requests"
        assert decision.retry_after == 1
    limiter.release("a")
    assert limiter.acquire("a", limits).remaining == 1


def test_concurrent_limit_is_exact_and_slots_come_back():
    limiter = MemoryLimiter()
    limits = Limits(max_concurrent=2)
    outcomes = [limiter.acquire("bob", limits).allowed for _ in range(5)]
    assert outcomes == [True, True, False, False, False]
    assert limiter.in_flight("bob") == 2
    limiter.release("bob")
    assert limiter.acquire("bob", limits).allowed
    assert not limiter.acquire("bob", limits).allowed
    # Another user has their own slots.
    assert limiter.acquire("carol", limits).allowed


def test_threads_never_get_n_plus_one():
    import threading

    limiter = MemoryLimiter()
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
