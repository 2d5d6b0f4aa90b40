"""Per-user limits on the real server, with curl (the limiter's arithmetic: tests/unit/test_limits.py)."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator

import pytest
from conftest import require_binary
from peers_upstream import UpstreamApp, add_user, curl, start_serve, status_and_headers

from tlskit.server.limits import Limits, SharedLimiter


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
