"""Per-user limits: the limiter's arithmetic (with a controlled clock), then the real server with curl."""

from __future__ import annotations

import pytest

from tlskit.server.limits import WINDOW_SECONDS, Limits, MemoryLimiter, SharedLimiter


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


# --- the real server, real curl ------------------------------------------------------------------

import contextlib
import subprocess
import time
from collections.abc import Iterator

from conftest import require_binary
from peers_upstream import UpstreamApp, add_user, curl, start_serve, status_and_headers


def discard_bodies(urls: list[str]) -> list[str]:
    """curl's -o applies to one URL: give each its own, so only the -w codes reach stdout."""
    return [arg for url in urls for arg in ("-o", "/dev/null", url)]


@pytest.fixture
def upstream():
    with UpstreamApp.start() as app:
        yield app


@contextlib.contextmanager
def held_requests(served, upstream, token: str, show_headers: bool = False) -> Iterator[list[subprocess.Popen]]:
    """Five curl requests to the upstream's /gate at once, as ``token``'s user.

    Yields the clients once three have finished (the refused ones) and two wait on the upstream,
    or after 30 s; the gate is released on leaving, so the held two can finish.
    Each client's stdout is the status code (after the response headers with ``show_headers``).
    """
    command = ["curl", "-sk", "-o", "/dev/null", *(["-D", "-"] if show_headers else []),
               "-w", "%{http_code}", "-H", f"Authorization: Bearer {token}"]
    clients = [subprocess.Popen([*command, f"{served.url}/gate?i={i}"], stdout=subprocess.PIPE, text=True)
               for i in range(5)]
    try:
        deadline = time.monotonic() + 30
        while (sum(c.poll() is not None for c in clients) < 3 or upstream.in_flight < 2) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        yield clients
    finally:
        upstream.release_gate()


def test_five_per_hour_then_429_with_retry_after_and_ratelimit_headers(tmp_path):
    require_binary("curl")
    state = tmp_path / "state"
    token = add_user(state, "alice", "--max-requests", "5")
    with start_serve(state) as served:
        answers = []
        for _ in range(7):
            answers.append(status_and_headers(curl("-i", "--cacert", str(served.ca_file), "-H",
                                                   f"Authorization: Bearer {token}", f"https://localhost:{served.port}/api")))
        assert [status for status, _, _ in answers] == [200] * 5 + [429] * 2
        assert [h["ratelimit-remaining"] for _, h, _ in answers[:5]] == ["4", "3", "2", "1", "0"]
        status, headers, body = answers[5]
        assert headers["ratelimit-limit"] == "5" and headers["ratelimit-remaining"] == "0"
        assert headers["ratelimit-policy"] == "5;w=3600"
        retry_after = int(headers["retry-after"])
        assert 3500 < retry_after <= 3600
        assert 0 < int(headers["ratelimit-reset"]) <= 3600
        assert "too many requests" in body
        assert "strict-transport-security" in headers
        # The access log names the user and the 429.
        assert served.wait_for_access_log('" 429 ') and " - alice [" in served.stdout()


def test_server_default_applies_and_user_zero_means_unlimited(tmp_path):
    require_binary("curl")
    state = tmp_path / "state"
    limited = add_user(state, "dflt")                       # no own limit: the server's --max-requests 2
    free = add_user(state, "free", "--max-requests", "0")   # 0: unlimited, overrides the default
    with start_serve(state, "--max-requests", "2") as served:
        def codes(token: str, n: int) -> list[int]:
            done = curl("-k", "-w", "%{http_code}\n", "-H", f"X-API-Key: {token}",
                        *discard_bodies([f"{served.url}/api"] * n))
            return [int(c) for c in done.stdout.split()]
        assert codes(limited, 4) == [200, 200, 429, 429]
        assert codes(free, 6) == [200] * 6


def test_hourly_limit_exact_under_simultaneous_requests(tmp_path):
    """20 requests on 20 connections at once against a budget of 5: exactly 5 served, never 6."""
    require_binary("curl")
    state = tmp_path / "state"
    token = add_user(state, "burst", "--max-requests", "5")
    with start_serve(state) as served:
        done = curl("-k", "-Z", "--parallel-immediate", "--parallel-max", "20",
                    "-w", "%{http_code}\n", "-H", f"Authorization: Bearer {token}",
                    *discard_bodies([f"{served.url}/api?n={i}" for i in range(20)]))
        codes = sorted(int(c) for c in done.stdout.split())
        assert codes == [200] * 5 + [429] * 15


def test_two_concurrent_of_five_simultaneous_slow_requests(tmp_path, upstream):
    """bob may have 2 requests in flight. The upstream holds every answer until we release it, so the
    first two stay in flight while the other three arrive: exactly 2 served, 3 refused with 429."""
    require_binary("curl")
    state = tmp_path / "state"
    token = add_user(state, "bob", "--max-concurrent", "2")
    with start_serve(state, "--upstream", upstream.url) as served:
        # Three are refused at once, while two wait on the upstream.
        with held_requests(served, upstream, token, show_headers=True) as clients:
            finished = [c for c in clients if c.poll() is not None]
            assert len(finished) == 3
            assert upstream.in_flight == 2
            refused = [c.communicate(timeout=10)[0] for c in finished]
            assert all(out.strip().endswith("429") for out in refused)
            assert all("retry-after: 1" in out.lower() for out in refused)
        outputs = [c.communicate(timeout=30)[0] for c in clients if c not in finished]
        assert [out.strip()[-3:] for out in outputs] == ["200", "200"]
        assert upstream.max_in_flight == 2
        # The slots came back: bob can make requests again.
        again = curl("-k", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"Authorization: Bearer {token}",
                     f"{served.url}/echo")
        assert again.stdout == "200"


def test_limits_hold_across_worker_processes(tmp_path, upstream):
    """With --workers 2 the kernel spreads connections over two processes; the budget is still the user's,
    not each worker's: 5 of 20 parallel requests, and 2 of 5 held requests in flight."""
    require_binary("curl")
    state = tmp_path / "state"
    hourly = add_user(state, "hourly", "--max-requests", "5")
    slots = add_user(state, "slots", "--max-concurrent", "2")
    with start_serve(state, "--workers", "2", "--upstream", upstream.url) as served:
        done = curl("-k", "-Z", "--parallel-immediate", "--parallel-max", "20", "-w", "%{http_code}\n",
                    "-H", f"Authorization: Bearer {hourly}", *discard_bodies([f"{served.url}/h?n={i}" for i in range(20)]))
        assert sorted(int(c) for c in done.stdout.split()) == [200] * 5 + [429] * 15
        with held_requests(served, upstream, slots) as clients:
            assert sum(c.poll() is not None for c in clients) == 3 and upstream.in_flight == 2
        codes = sorted(c.communicate(timeout=30)[0] for c in clients)
        assert codes == ["200", "200", "429", "429", "429"]


def test_shared_counters_are_seen_by_another_process_and_dead_workers_are_forgotten(tmp_path):
    """Two limiters on one file behave as one; in-flight rows of a worker that died are cleared."""
    import multiprocessing

    path = tmp_path / "limits.sqlite"
    limits = Limits(max_requests=3, max_concurrent=1)
    context = multiprocessing.get_context("fork")
    child = context.Process(target=_hold_one_slot, args=(str(path),))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    # The child took one of 3 requests and died holding its in-flight slot.
    limiter = SharedLimiter(path)
    first = limiter.acquire("u", limits)
    assert first.allowed and first.remaining == 1
    assert not limiter.acquire("u", limits).allowed  # concurrency: our own request is in flight
    limiter.release("u")
    assert limiter.acquire("u", limits).allowed
    limiter.release("u")
    assert not limiter.acquire("u", limits).allowed  # the hour's 3 are used, across both processes


def _hold_one_slot(path: str) -> None:
    import os

    limiter = SharedLimiter(path)
    assert limiter.acquire("u", Limits(max_requests=3, max_concurrent=1)).allowed
    os._exit(0)


def test_hourly_count_survives_a_restart_with_workers(tmp_path, upstream):
    """With --workers the hour's count lives in STATE_DIR/limits.sqlite: a restarted server still knows it."""
    require_binary("curl")
    state = tmp_path / "state"
    token = add_user(state, "alice", "--max-requests", "3")

    def codes(served, n: int) -> list[str]:
        return [curl("-k", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"Authorization: Bearer {token}",
                     f"{served.url}/h").stdout for _ in range(n)]

    with start_serve(state, "--workers", "2", "--upstream", upstream.url) as served:
        assert codes(served, 2) == ["200", "200"]
    with start_serve(state, "--workers", "2", "--upstream", upstream.url) as served:
        assert codes(served, 2) == ["200", "429"]
