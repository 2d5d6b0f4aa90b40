"""Limits in a real Redis: the Lua decision against the one rule, exactness across limiters, leases,
and what a server does when Redis goes away and comes back."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from peers_redis import RedisServer, redis_server, redis_tls  # noqa: F401 (fixtures)
from tlskit.server.limits import Decision, Limits, MemoryLimiter
from tlskit.server.limits_redis import RedisLimiter
from tlskit.server.stores import RedisUrl


def limiter_for(server: RedisServer, **options) -> RedisLimiter:
    return RedisLimiter(RedisUrl(server.url), **options)


async def decide(limiter, user: str, limits: Limits) -> Decision:
    decision = limiter.acquire(user, limits)
    return decision if isinstance(decision, Decision) else await decision


def test_hourly_limit_is_exact_across_limiters_deciding_at_once(redis_server):
    """Three limiters (three instances) race 30 decisions in one event-loop turn each: exactly 10 pass,
    the RateLimit figures count down, and a refusal says when the hour frees a slot."""
    async def main():
        limiters = [limiter_for(redis_server) for _ in range(3)]
        limits = Limits(max_requests=10)
        decisions = await asyncio.gather(*(decide(limiters[i % 3], "alice", limits) for i in range(30)))
        admitted = [d for d in decisions if d.allowed]
        refused = [d for d in decisions if not d.allowed]
        assert len(admitted) == 10 and len(refused) == 20
        assert sorted(d.remaining for d in admitted) == list(range(10))
        assert all(d.reason == "requests per hour" and 3590 <= d.retry_after <= 3600 for d in refused)
        assert all(d.status == 429 for d in refused)
        # Every limiter asked Redis once per turn, not once per decision.
        assert sum(l.stats["round_trips"] for l in limiters) <= 6
        for limiter in limiters:
            await limiter.aclose()

    asyncio.run(main())


def test_concurrent_slots_are_exact_and_come_back_on_release(redis_server):
    async def main():
        one, two = limiter_for(redis_server), limiter_for(redis_server)
        limits = Limits(max_concurrent=2)
        first = await decide(one, "bob", limits)
        second = await decide(two, "bob", limits)
        third = await decide(one, "bob", limits)
        assert first.allowed and second.allowed and first.lease and second.lease
        assert not third.allowed and third.reason == "concurrent requests" and third.retry_after == 1
        assert one.in_flight("bob") == 1 and two.in_flight("bob") == 2
        two.release("bob", second)
        await asyncio.sleep(0.05)            # the release goes out with the next turn
        assert (await decide(one, "bob", limits)).allowed
        assert (await decide(one, "carol", limits)).allowed       # another user, other slots
        await one.aclose()
        await two.aclose()

    asyncio.run(main())


def test_a_lease_that_is_not_renewed_runs_out(redis_server):
    """An instance that dies stops renewing: its slot is free again after one lease, not before."""
    async def main():
        dead = limiter_for(redis_server, lease=1.5)
        alive = limiter_for(redis_server, lease=1.5)
        limits = Limits(max_concurrent=1)
        assert (await decide(dead, "dan", limits)).allowed
        if dead._renewer is not None:
            dead._renewer.cancel()            # as if the process were gone
        assert not (await decide(alive, "dan", limits)).allowed
        await asyncio.sleep(1.7)
        assert (await decide(alive, "dan", limits)).allowed
        await dead.aclose()
        await alive.aclose()

    asyncio.run(main())


def test_a_running_request_keeps_its_slot_past_the_lease(redis_server):
    async def main():
        holder = limiter_for(redis_server, lease=1.2)
        other = limiter_for(redis_server, lease=1.2)
        limits = Limits(max_concurrent=1)
        held = await decide(holder, "erin", limits)
        assert held.allowed
        await asyncio.sleep(3.0)              # 2.5 leases: renewed every 0.4 s meanwhile
        assert not (await decide(other, "erin", limits)).allowed
        holder.release("erin", held)
        await asyncio.sleep(0.05)
        assert (await decide(other, "erin", limits)).allowed
        await holder.aclose()
        await other.aclose()

    asyncio.run(main())


def test_the_lua_rule_is_the_python_rule(redis_server):
    """Redis decides with a copy of limits._refusal: for a grid of limits and prior use, both agree,
    and Redis's figures are the ones MemoryLimiter gives."""
    async def main():
        limiter = limiter_for(redis_server)
        case = 0
        for max_requests in (0, 1, 3):
            for max_concurrent in (0, 1, 2):
                limits = Limits(max_requests, max_concurrent)
                if limits.unlimited:
                    continue
                for used in range(4):
                    case += 1
                    user = f"grid{case}"
                    memory = MemoryLimiter()
                    held = []
                    for _ in range(used):
                        if (await decide(limiter, user, limits)).allowed:
                            held.append(memory.acquire(user, limits))
                    ours = await decide(limiter, user, limits)
                    theirs = memory.acquire(user, limits)
                    assert (ours.allowed, ours.reason, ours.remaining, ours.limit) == \
                        (theirs.allowed, theirs.reason, theirs.remaining, theirs.limit), (limits, used)
        await limiter.aclose()

    asyncio.run(main())


def test_unlimited_users_never_reach_redis(redis_server):
    async def main():
        limiter = limiter_for(redis_server)
        for _ in range(50):
            assert limiter.acquire("free", Limits()).allowed
        assert limiter.stats["round_trips"] == 0
        await limiter.aclose()

    asyncio.run(main())


def test_redis_down_fails_open_or_closed_then_limits_come_back(redis_server, caplog):
    async def main():
        opened = limiter_for(redis_server, timeout=0.5)
        closed = limiter_for(redis_server, timeout=0.5, fail="closed")
        limits = Limits(max_requests=2)
        assert (await decide(opened, "fay", limits)).allowed
        redis_server.stop()
        started = time.monotonic()
        down_open = [await decide(opened, "fay", limits) for _ in range(5)]
        down_closed = [await decide(closed, "fay", limits) for _ in range(5)]
        assert time.monotonic() - started < 3          # the first failure costs the timeout, not every one
        assert all(d.allowed and d.limit == 0 for d in down_open)
        assert all(not d.allowed and d.status == 503 and d.retry_after >= 1 for d in down_closed)
        redis_server.restart()                          # an empty Redis: the hour starts over
        deadline = time.monotonic() + 5
        while opened._down is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        decisions = [await decide(opened, "fay", limits) for _ in range(3)]
        assert [d.allowed for d in decisions] == [True, True, False]
        await opened.aclose()
        await closed.aclose()

    with caplog.at_level("WARNING", logger="tlskit.serve"):
        asyncio.run(main())
    lines = [r.getMessage() for r in caplog.records]
    # One line per limiter for the outage (not one per request), one each for the way back.
    assert sum("unreachable" in line for line in lines) == 2, lines
    assert any("without limits" in line for line in lines) and any("answering 503" in line for line in lines)
    assert sum("reachable again" in line for line in lines) >= 1


# --- the real server ------------------------------------------------------------------------------

from conftest import free_port, run_tlskit  # noqa: E402
from peers_serve import start_serve  # noqa: E402


def _codes(served, token: str, n: int) -> list[int]:
    return [served.curl("/api/products/1", "-H", f"Authorization: Bearer {token}").status for _ in range(n)]


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_serve_with_redis_down_and_back_without_restart(tmp_path, redis_server, mode):
    db = tmp_path / "users.sqlite"
    token = run_tlskit("users", "add", "gil", "--token", "--max-requests", "3", "--db", str(db), "--json").json["token"]
    served = start_serve(tmp_path, "--db", str(db), "--limits-store", redis_server.url, "--limits-fail", mode)
    try:
        assert _codes(served, token, 4) == [200, 200, 200, 429]
        redis_server.stop()
        replies = [served.curl("/api/products/1", "-H", f"Authorization: Bearer {token}") for _ in range(4)]
        if mode == "open":
            assert [r.status for r in replies] == [200] * 4
        else:
            assert [r.status for r in replies] == [503] * 4
            assert all(int(r.header("retry-after")) >= 1 for r in replies)
            assert json.loads(replies[0].body)["error"] == "unavailable"
        redis_server.restart()
        time.sleep(1.5)                               # the probe finds Redis again within a second
        assert _codes(served, token, 4) == [200, 200, 200, 429]
        log = served.stderr()
        assert log.count("unreachable") == 1 and "reachable again" in log and "Traceback" not in log
    finally:
        served.stop()


def test_serve_refuses_a_wrong_redis_password(tmp_path):
    server = RedisServer.start(password="right-password")
    try:
        url = server.url.replace("right-password", "wrong-password")
        run = run_tlskit("serve", "--state-dir", str(tmp_path / "s"), "--limits-store", url, "--port", str(free_port()))
        assert run.returncode == 2 and "refused" in run.stderr and "wrong-password" not in run.stderr
    finally:
        server.destroy()


def test_serve_refuses_a_rediss_server_its_url_does_not_trust(tmp_path, redis_tls):
    """Without ssl_ca_certs rediss:// trusts the system's store, which did not issue this certificate: that
    will not mend itself, so serve says so at start (exit 2), naming the parameter that fixes it."""
    from conftest import assert_one_line_error

    run = run_tlskit("serve", "--state-dir", str(tmp_path / "s"), "--limits-store", redis_tls.plain_url,
                     "--port", str(free_port()))
    assert_one_line_error(run, 2, "is not the server tlskit trusts")
    assert "ssl_ca_certs=" in run.stderr and "certificate" in run.stderr


def test_rediss_with_its_ca_decides_as_plain_redis_does(redis_tls):
    async def main():
        limiter = limiter_for(redis_tls)
        decisions = [await decide(limiter, "tls", Limits(max_requests=3)) for _ in range(4)]
        assert [d.allowed for d in decisions] == [True, True, True, False]
        assert limiter._down is None
        await limiter.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("value,message", [
    ("memcached://x", "bad --limits-store"),
    ("sqlite:", "names no file"),
    ("redis://127.0.0.1:1/0?ssl_ca_certs=/etc/hostname", "is a TLS option"),
    ("rediss://127.0.0.1:1/0?ssl_ca_certs=/nonexistent/ca.pem", "does not exist"),
    ("rediss://:pw@127.0.0.1:1/0?socket_timeout=9", "unknown parameter 'socket_timeout'"),
    ("redis://127.0.0.1:1/0?password=query-secret", "unknown parameter 'password'"),
    ("rediss://127.0.0.1:1/0?ssl_ca_certs=", "does not exist"),
    ("rediss://127.0.0.1:1/0?ssl_cert_reqs=maybe", "ssl_cert_reqs=maybe"),
])
def test_bad_limits_store_is_one_line(tmp_path, value, message):
    from conftest import assert_one_line_error

    run = run_tlskit("serve", "--state-dir", str(tmp_path / "s"), "--limits-store", value)
    assert_one_line_error(run, 2, message)
    assert "secret" not in run.stderr and ":pw@" not in run.stderr

