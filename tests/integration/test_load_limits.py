"""Per-user limits under load: 100 concurrent clients, and exactly the allowed number get through.

Each client is a thread with its own TLS connection (tests/peers_rawhttp.py); all start together
behind a barrier, so the requests really race in the server. Limits are counted per user: a user's
burst never spends another user's budget. With one worker the count is exact (MemoryLimiter admits
and counts in one step on the event loop); ``--workers N`` shares the count through SQLite
(SharedLimiter), tested exact in tests/test_serve_limits.py.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from peers_rawhttp import RawReply, request, tls_context
from peers_serve import start_serve

pytestmark = pytest.mark.slow
CLIENTS = 100


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
    served = start_serve(tmp_path)
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
    from peers_upstream import UpstreamApp

    with UpstreamApp.start() as upstream:
        served = start_serve(tmp_path, "--upstream", upstream.url)
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
            import time

            deadline = time.monotonic() + 90
            while sum(r is not None for r in results) < CLIENTS - 7 and time.monotonic() < deadline:
                time.sleep(0.05)
            done = [r for r in results if r is not None]
            assert len(done) == CLIENTS - 7, Counter(r.status for r in done)
            assert all(r.status == 429 for r in done), Counter(r.status for r in done)
            assert upstream.in_flight == 7
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
    served = start_serve(tmp_path, "--workers", "2")
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
