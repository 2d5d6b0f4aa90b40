"""Per-user limits on the real server: curl and bursts of 100 raw TLS clients against hourly and
concurrent limits, one worker and several (the limiter's arithmetic: tests/unit/test_limits.py).

Each burst client is a thread with its own TLS connection (tests/peers_rawhttp.py); all start together
behind a barrier, so the requests really race in the server. Limits are counted per user: a user's
burst never spends another user's budget. With one worker the count is exact (MemoryLimiter admits
and counts in one step on the event loop); ``--workers N`` shares the count through SQLite
(SharedLimiter), exact too.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import peers_serve
import pytest
from conftest import require_binary
from peers_rawhttp import RawReply, request, tls_context
from peers_upstream import UpstreamApp, add_user, curl, start_serve, status_and_headers

from tlskit.server.limits import Limits, SharedLimiter

pytestmark = pytest.mark.slow
CLIENTS = 100


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


# The clients of a burst come from several loopback addresses, as many clients would: the server caps
# the connections one address may have open before its first request completes (--max-pending-per-ip).
SOURCES = ("127.0.0.1", "127.0.0.3", "127.0.0.4", "127.0.0.5")


def _burst(served, jobs: list[tuple[str, list[tuple[bytes, bytes]]]], timeout: float = 120) -> list[RawReply]:
    """Send every (target, headers) job at once, one thread and one TLS connection each."""
    context = tls_context(served.ca)
    barrier = threading.Barrier(len(jobs))

    def one(numbered):
        number, (target, headers) = numbered
        barrier.wait(timeout=60)
        return request(served.port, served.ca, "GET", target, headers, context=context, timeout=timeout,
                       source=SOURCES[number % len(SOURCES)])

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(one, enumerate(jobs)))


def _bearer(token: str) -> list[tuple[bytes, bytes]]:
    return [(b"Authorization", b"Bearer " + token.encode())]


def _check_refusals(replies: list[RawReply]) -> None:
    for reply in replies:
        if reply.status == 429:
            assert int(reply.header("retry-after")) >= 1, reply.headers


@pytest.fixture
def server(tmp_path):
    served = peers_serve.start_serve(tmp_path)
    try:
        yield served
    finally:
        served.stop()
        assert "Traceback" not in served.stderr()


def test_hundred_clients_against_an_hourly_limit(server):
    token = _add(server, "metered", "--max-requests", "37")
    replies = _burst(server, [(f"/api/products?limit={i}", _bearer(token)) for i in range(CLIENTS)])
    assert Counter(r.status for r in replies) == {200: 37, 429: 63}
    _check_refusals(replies)
    # The RateLimit fields count down to zero across the admitted ones; every refusal says 0 left.
    remaining = sorted(int(r.header("ratelimit-remaining")) for r in replies if r.status == 200)
    assert remaining == list(range(37)), remaining
    assert all(r.header("ratelimit-remaining") == "0" for r in replies if r.status == 429)
    # The budget is spent: the next request is refused too.
    assert request(server.port, server.ca, "GET", "/api", _bearer(token)).status == 429


def test_limits_are_per_user_under_a_mixed_burst(server):
    """Three users race at once: 100 clients each for two limited users, 20 for an unlimited one."""
    small = _add(server, "small", "--max-requests", "20")
    large = _add(server, "large", "--max-requests", "45")
    free = _add(server, "free")
    jobs = ([("/api/customers", _bearer(small))] * CLIENTS + [("/api/orders", _bearer(large))] * CLIENTS
            + [("/api", _bearer(free))] * 20)
    replies = _burst(server, jobs)
    by_user = {
        "small": Counter(r.status for r in replies[:CLIENTS]),
        "large": Counter(r.status for r in replies[CLIENTS:2 * CLIENTS]),
        "free": Counter(r.status for r in replies[2 * CLIENTS:]),
    }
    assert by_user == {"small": {200: 20, 429: 80}, "large": {200: 45, 429: 55}, "free": {200: 20}}, by_user
    _check_refusals(replies)


def test_hundred_basic_auth_clients_share_one_password_check_and_one_budget(server):
    """Password users are limited the same way; 100 concurrent first requests must not pass 100 hashes."""
    (server.state_dir.parent / "pw").write_text("s3cret-for-load\n")
    added = server.users("add", "carol", "--password-file", str(server.state_dir.parent / "pw"),
                         "--max-requests", "10")
    assert added.returncode == 0, added.stderr
    import base64

    basic = [(b"Authorization", b"Basic " + base64.b64encode(b"carol:s3cret-for-load"))]
    wrong = [(b"Authorization", b"Basic " + base64.b64encode(b"carol:wrong"))]
    replies = _burst(server, [("/api", basic)] * CLIENTS + [("/api", wrong)] * 20)
    assert Counter(r.status for r in replies[:CLIENTS]) == {200: 10, 429: 90}
    # Wrong passwords are 401 and spend nothing of carol's budget (it was already spent by the others).
    assert Counter(r.status for r in replies[CLIENTS:]) == {401: 20}
    _check_refusals(replies)


def test_hundred_clients_against_a_concurrency_limit(tmp_path):
    """7 requests in flight allowed: the upstream holds every answer until released, so while 7 wait
    there, the other 93 must be refused, whatever the timing."""
    with UpstreamApp.start() as upstream:
        served = peers_serve.start_serve(tmp_path, "--upstream", upstream.url)
        try:
            token = _add(served, "bursty", "--max-concurrent", "7")
            context = tls_context(served.ca)
            results: list[RawReply | None] = [None] * CLIENTS
            barrier = threading.Barrier(CLIENTS)

            def one(index: int) -> None:
                barrier.wait(timeout=60)
                results[index] = request(served.port, served.ca, "GET", f"/gate?i={index}", _bearer(token),
                                         context=context, timeout=120)

            threads = [threading.Thread(target=one, args=(i,)) for i in range(CLIENTS)]
            for thread in threads:
                thread.start()
            # Wait (bounded) until every refused client has its answer: 93 of them, while 7 hang.
            deadline = time.monotonic() + 90
            while sum(r is not None for r in results) < CLIENTS - 7 and time.monotonic() < deadline:
                time.sleep(0.05)
            done = [r for r in results if r is not None]
            assert len(done) == CLIENTS - 7, Counter(r.status for r in done)
            assert all(r.status == 429 for r in done), Counter(r.status for r in done)
            # The 93 refusals can be answered before the last admitted request reaches the upstream.
            peers_serve.poll_until(lambda: upstream.in_flight, lambda held: held == 7)
            upstream.release_gate()
            for thread in threads:
                thread.join(timeout=60)
            assert Counter(r.status for r in results) == {200: 7, 429: 93}
            assert upstream.max_in_flight == 7
            _check_refusals(results)
            # Every slot came back.
            assert request(served.port, served.ca, "GET", "/echo", _bearer(token), context=context).status == 200
        finally:
            upstream.release_gate()
            served.stop()


def _add(served, name: str, *options: str) -> str:
    run = served.users("add", name, "--token", "--methods", "GET", "--json", *options)
    assert run.returncode == 0, run.stderr
    return run.json["token"]


def test_with_two_workers_the_budget_is_the_users_not_each_workers(tmp_path):
    """--workers 2 shares the count through STATE_DIR/limits.sqlite: exactly N of a burst pass, as with one."""
    served = peers_serve.start_serve(tmp_path, "--workers", "2")
    try:
        token = _add(served, "shared", "--max-requests", "20")
        replies = _burst(served, [("/api", _bearer(token))] * CLIENTS)
        assert Counter(r.status for r in replies) == {200: 20, 429: 80}
        _check_refusals(replies)
    finally:
        served.stop()


def test_stalled_clients_do_not_block_real_ones(server):
    """150 TCP connections that never start TLS and 150 TLS connections stuck mid-headers (slowloris),
    from two other addresses: 20 ordinary clients arriving meanwhile are all served."""
    import socket

    token = _add(server, "patient")
    context = tls_context(server.ca)
    stalled = []
    try:
        for _ in range(150):
            stalled.append(socket.create_connection(("127.0.0.1", server.port), timeout=30,
                                                    source_address=("127.0.0.6", 0)))
        for _ in range(150):
            raw = socket.create_connection(("127.0.0.1", server.port), timeout=30, source_address=("127.0.0.7", 0))
            stalled.append(raw)
            try:
                tls = context.wrap_socket(raw, server_hostname="localhost")
                tls.sendall(b"GET /api HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
                stalled.append(tls)
            except OSError:
                pass            # over the per-address cap: refused, which is the point
        replies = _burst(server, [("/api/products", _bearer(token))] * 20)
        assert Counter(r.status for r in replies) == {200: 20}
    finally:
        for sock in stalled:
            sock.close()
