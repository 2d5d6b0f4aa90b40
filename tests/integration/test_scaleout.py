"""Several `tlskit serve` instances sharing users (and a dataset) in PostgreSQL and limits in Redis, as
behind a load balancer: exact limits across instances, changes seen by all, and each store failing.

Every engine is real: a PostgreSQL cluster and a Redis server started by the tests on free ports.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import require_binary, run_tlskit
from peers_postgres import pg_url, postgres, wait_until  # noqa: F401 (fixtures)
from peers_redis import RedisServer, redis_server, redis_tls  # noqa: F401 (fixtures)
from peers_serve import start_serve
from peers_upstream import UpstreamApp

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def instances(tmp_path, count: int, *args: str):
    """``count`` instances with their own state dirs and ports, the same stores."""
    started = []
    try:
        for number in range(count):
            work = tmp_path / f"i{number}"
            work.mkdir()
            started.append(start_serve(work, *args))
        yield started
    finally:
        for served in started:
            served.stop()
        for served in started:
            assert "Traceback" not in served.stderr(), served.stderr()


def add_user(db: str, name: str, *options: str) -> str:
    run = run_tlskit("users", "add", name, "--token", "--methods", "all", *options, "--db", db, "--json")
    assert run.returncode == 0, run.stderr
    return run.json["token"]


def status(served, token: str, path: str = "/api/me") -> int:
    return served.curl(path, "-H", f"Authorization: Bearer {token}").status


def parallel(urls: list[str], token: str) -> list[int]:
    """Every URL at once on its own connection (curl -Z), the status codes sorted."""
    curl = require_binary("curl")
    args = [a for url in urls for a in ("-o", "/dev/null", url)]
    done = subprocess.run([curl, "-sk", "-Z", "--parallel-immediate", "--parallel-max", str(len(urls)),
                           "-w", "%{http_code}\n", "-H", f"Authorization: Bearer {token}", *args],
                          capture_output=True, text=True, timeout=120)
    return sorted(int(code) for code in done.stdout.split())


def test_thirty_requests_over_three_instances_against_ten_an_hour(tmp_path, pg_url, redis_server):
    token = add_user(pg_url, "metered", "--max-requests", "10")
    with instances(tmp_path, 3, "--db", pg_url, "--limits-store", redis_server.url) as servers:
        urls = [f"{servers[i % 3].url}/api/products/{1 + i % 3}?n={i}" for i in range(30)]
        assert parallel(urls, token) == [200] * 10 + [429] * 20
        # Spent for every instance, not per instance.
        assert [status(s, token) for s in servers] == [429, 429, 429]


def test_two_in_flight_across_three_instances(tmp_path, pg_url, redis_server):
    token = add_user(pg_url, "bob", "--max-concurrent", "2")
    with UpstreamApp.start() as upstream, \
            instances(tmp_path, 3, "--db", pg_url, "--limits-store", redis_server.url,
                      "--upstream", upstream.url) as servers:
        curl = require_binary("curl")
        clients = [subprocess.Popen([curl, "-sk", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                                     f"Authorization: Bearer {token}", f"{servers[i % 3].url}/gate?i={i}"],
                                    stdout=subprocess.PIPE, text=True) for i in range(6)]
        outputs = {}
        try:
            assert wait_until(lambda: sum(c.poll() is not None for c in clients) == 4 and upstream.in_flight == 2, 30)
            outputs = {c: c.communicate()[0] for c in clients if c.poll() is not None}
            assert sorted(outputs.values()) == ["429"] * 4
        finally:
            upstream.release_gate()
        outputs.update({c: c.communicate(timeout=30)[0] for c in clients if c not in outputs})
        assert sorted(outputs.values()) == ["200", "200", "429", "429", "429", "429"]
        assert upstream.max_in_flight == 2
        # The slots came back on every instance.
        assert [status(s, token, "/echo") for s in servers] == [200, 200, 200]


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_redis_down_mid_run_every_instance_fails_as_told_then_limits_are_shared_again(tmp_path, pg_url,
                                                                                     redis_server, mode):
    token = add_user(pg_url, "erin", "--max-requests", "4")
    unlimited = add_user(pg_url, "free")
    with instances(tmp_path, 2, "--db", pg_url, "--limits-store", redis_server.url, "--limits-fail", mode) as servers:
        assert [status(s, token) for s in servers] == [200, 200]
        redis_server.stop()
        expected = 200 if mode == "open" else 503
        for served in servers:
            replies = [served.curl("/api/me", "-H", f"Authorization: Bearer {token}") for _ in range(3)]
            assert [r.status for r in replies] == [expected] * 3
            if mode == "closed":
                assert int(replies[0].header("retry-after")) >= 1 and replies[0].json["error"] == "unavailable"
            assert status(served, unlimited) == 200          # no limits: Redis is never asked
        redis_server.restart()                               # empty: the hour starts over
        assert wait_until(lambda: all(status(s, unlimited) == 200 for s in servers) and
                          all("reachable again" in s.stderr() for s in servers), 10, step=0.3)
        urls = [f"{servers[i % 2].url}/api/me?n={i}" for i in range(10)]
        assert parallel(urls, token) == [200] * 4 + [429] * 6
        for served in servers:
            assert served.stderr().count("unreachable") == 1


def within_two_seconds(servers, token: str, expected: int) -> float:
    """Seconds until every instance answers ``expected`` for the token (polled; fails past 2 s)."""
    since = time.monotonic()
    seen = wait_until(lambda: [status(s, token) for s in servers] == [expected] * len(servers), 2.0, step=0.05)
    took = time.monotonic() - since
    assert seen and took <= 2.0, (took, [status(s, token) for s in servers])
    return took


def test_user_changes_new_tokens_and_revocations_reach_every_instance_within_two_seconds(tmp_path, pg_url):
    alice = add_user(pg_url, "alice")
    first = add_user(pg_url, "tess")
    with instances(tmp_path, 3, "--db", pg_url) as servers:
        assert [status(s, alice) for s in servers] == [200, 200, 200]
        assert run_tlskit("users", "remove", "alice", "--db", pg_url).returncode == 0
        removed = time.monotonic()
        assert wait_until(lambda: [status(s, alice) for s in servers] == [401, 401, 401], 5)
        assert time.monotonic() - removed <= 2.5
        carol = add_user(pg_url, "carol", "--methods", "GET")
        added = time.monotonic()
        assert wait_until(lambda: [status(s, carol) for s in servers] == [200, 200, 200], 5)
        assert time.monotonic() - added <= 2.5
        # A change made with psql, not tlskit, reaches them too (the schema's triggers notify).
        postgres_url = pg_url
        import psycopg

        with psycopg.connect(postgres_url, autocommit=True) as db:
            db.execute("UPDATE tlskit.users SET methods = 'POST' WHERE name = 'carol'")
        assert wait_until(lambda: [status(s, carol) for s in servers] == [403, 403, 403], 5)

        # A new token, and then the revocation of every token, on the same instances.
        assert [status(s, first) for s in servers] == [200, 200, 200]
        made = run_tlskit("users", "set", "tess", "--new-token", "--db", pg_url, "--json")
        assert made.returncode == 0, made.stderr
        second = made.json["token"]
        within_two_seconds(servers, second, 200)
        assert [status(s, first) for s in servers] == [200, 200, 200]     # older tokens stay valid
        assert run_tlskit("users", "set", "tess", "--revoke-tokens", "--db", pg_url).returncode == 0
        within_two_seconds(servers, second, 401)
        assert [status(s, first) for s in servers] == [401, 401, 401]


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_rediss_limits_are_exact_then_a_certificate_from_another_ca_fails_as_told_with_one_line(tmp_path, pg_url,
                                                                                                 redis_tls, mode):
    """Redis over TLS, its certificate from a CA named in the URL: limits as exact as over plain TCP. Then
    Redis comes back with a certificate from another CA."""
    tina = add_user(pg_url, "tina", "--max-requests", "10")
    token = add_user(pg_url, "uma", "--max-requests", "100")
    with instances(tmp_path, 2, "--db", pg_url, "--limits-store", redis_tls.url, "--limits-fail", mode) as servers:
        urls = [f"{servers[i % 2].url}/api/me?n={i}" for i in range(20)]
        assert parallel(urls, tina) == [200] * 10 + [429] * 10
        assert [status(s, tina) for s in servers] == [429, 429]
        for served in servers:
            assert "unreachable" not in served.stderr()
        assert redis_tls.client().zcard("tlskit:limits:tina:hour") == 10
        assert [status(s, token) for s in servers] == [200, 200]
        redis_tls.stop()
        redis_tls.reissue()                 # the same server, now with a certificate the URL's CA did not issue
        redis_tls.restart()
        expected = 200 if mode == "open" else 503
        for served in servers:
            assert [status(served, token) for _ in range(4)] == [expected] * 4
            lines = [line for line in served.stderr().splitlines() if "limits store" in line]
            assert len(lines) == 1 and "its certificate is not trusted" in lines[0], lines


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_redis_password_right_limits_hold_changed_fails_as_told_never_logged(tmp_path, pg_url, mode):
    secret = "s3cret-" + os.urandom(6).hex()
    server = RedisServer.start(password=secret)
    try:
        token = add_user(pg_url, "vic", "--max-requests", "4")
        shown = run_tlskit("serve", "--print-config", "--db", pg_url, "--limits-store", server.url)
        assert shown.returncode == 0 and "limits_store" in shown.stdout
        assert secret not in shown.stdout + shown.stderr
        with instances(tmp_path, 2, "--db", pg_url, "--limits-store", server.url, "--limits-fail", mode) as servers:
            urls = [f"{servers[i % 2].url}/api/me?n={i}" for i in range(8)]
            assert parallel(urls, token) == [200] * 4 + [429] * 4
            # The password changes under the running instances (and their connections are dropped).
            admin = server.client()
            admin.config_set("requirepass", "another-" + secret)
            admin.client_kill_filter(_type="normal", skipme=True)
            server.password = "another-" + secret
            expected = 200 if mode == "open" else 503
            for served in servers:
                assert [status(served, token) for _ in range(4)] == [expected] * 4
                lines = [line for line in served.stderr().splitlines() if "limits store" in line]
                assert len(lines) == 1 and "refused the password" in lines[0], lines
                action = "without limits" if mode == "open" else "answering 503"
                assert action in lines[0]
                assert secret not in served.stderr() and secret not in served.stdout_path.read_text()
    finally:
        server.destroy()


def test_an_instance_killed_mid_request_holds_no_slot_beyond_its_lease(tmp_path, pg_url, redis_server):
    token = add_user(pg_url, "dora", "--max-concurrent", "2")
    lease = 3.0
    with UpstreamApp.start() as upstream, \
            instances(tmp_path, 2, "--db", pg_url, "--limits-store", redis_server.url, "--upstream", upstream.url,
                      "--limits-lease", str(lease)) as (doomed, survivor):
        curl = require_binary("curl")
        held = [subprocess.Popen([curl, "-sk", "-o", "/dev/null", "-H", f"Authorization: Bearer {token}",
                                  f"{doomed.url}/gate?i={i}"], stdout=subprocess.DEVNULL) for i in range(2)]
        try:
            assert wait_until(lambda: upstream.in_flight == 2, 20)
            time.sleep(lease * 1.5)        # the running requests' leases were renewed meanwhile
            assert status(survivor, token, "/echo") == 429
            os.kill(doomed.proc.pid, signal.SIGKILL)
            killed = time.monotonic()
            doomed.proc.wait(10)
            assert status(survivor, token, "/echo") == 429      # the lease still runs
            assert wait_until(lambda: status(survivor, token, "/echo") == 200, lease + 5, step=0.2)
            freed = time.monotonic() - killed
            assert freed <= lease + 1.5, freed
        finally:
            upstream.release_gate()
            for client in held:
                client.wait(30)


def test_postgresql_down_recent_credentials_work_others_503_dataset_503_then_back(tmp_path, postgres):
    url = postgres.new_database()
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text)")
        db.execute("INSERT INTO notes (body) VALUES ('hello')")
    alice = add_user(url, "alice")
    bob = add_user(url, "bob")
    ttl = 6
    served = start_serve(tmp_path, "--db", url, "--dataset", url, "--auth-cache-ttl", str(ttl))
    try:
        assert status(served, alice) == 200 and status(served, alice, "/api/notes/1") == 200
        postgres.stop_server()
        down = time.monotonic()
        # The instance knows within a second or two (alice, verified a moment ago, still gets in meanwhile).
        assert wait_until(lambda: status(served, alice) == 200 and "unreadable" in served.stderr(), 5, step=0.1)
        assert time.monotonic() - down < 3
        # bob, never verified, gets the 503 JSON.
        reply = None

        def bob_refused():
            nonlocal reply
            reply = served.curl("/api/me", "-H", f"Authorization: Bearer {bob}")
            return reply.status == 503

        assert wait_until(bob_refused, 5, step=0.2)
        assert reply.header("content-type") == "application/json" and int(reply.header("retry-after")) >= 1
        assert json.loads(reply.body)["error"] == "unavailable"
        # alice was verified a moment ago: she still gets in, until the TTL runs out.
        assert status(served, alice) == 200
        started = time.monotonic()
        dataset = served.curl("/api/notes/1", "-H", f"Authorization: Bearer {alice}")
        assert dataset.status == 503 and int(dataset.header("retry-after")) >= 1
        assert time.monotonic() - started < 6                     # never a hang
        assert wait_until(lambda: status(served, alice) == 503, ttl + 3, step=0.3)
        assert time.monotonic() - down >= ttl - 1
        # Back, without a restart.
        postgres.start_server()
        assert wait_until(lambda: status(served, bob) == 200, 15, step=0.3)
        assert wait_until(lambda: status(served, alice, "/api/notes/1") == 200, 10, step=0.3)
        log = served.stderr()
        assert "Traceback" not in log and "unreadable" in log and "readable again" in log
        assert log.count("dataset") >= 2
    finally:
        served.stop()
        postgres.start_server() if not (postgres.data / "postmaster.pid").exists() else None


def test_postgresql_that_hangs_costs_a_request_seconds_not_minutes(tmp_path, postgres):
    url = postgres.new_database()
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text)")
    alice = add_user(url, "alice")
    served = start_serve(tmp_path, "--db", url, "--dataset", url)
    pids = []
    try:
        assert status(served, alice, "/api/notes") == 200
        pids = postgres.pause()             # now with the backends of the instance's connections
        started = time.monotonic()
        reply = served.curl("/api/notes", "-H", f"Authorization: Bearer {alice}")
        assert reply.status == 503 and time.monotonic() - started < 8
        assert status(served, alice) == 200          # verified a moment ago; the users feed is not waited on
    finally:
        postgres.resume(pids)
        try:
            assert wait_until(lambda: status(served, alice, "/api/notes") == 200, 15, step=0.3)
        finally:
            served.stop()


def test_postgresql_that_hangs_mid_list_cuts_the_answer_off_in_seconds(tmp_path, postgres):
    """PostgreSQL stops in the middle of a streamed list: the client's answer ends (the connection closes
    before the last chunk, so it cannot pass for the whole list) within seconds, and the instance goes on
    serving everything that does not need the dataset."""
    import http.client
    import ssl

    import psycopg

    url = postgres.new_database()
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CREATE TABLE blobs (id serial PRIMARY KEY, body text)")
        # 64 KiB a row as sent (TOAST keeps it small on disk): 64 MiB, more than every buffer on the way holds.
        db.execute("INSERT INTO blobs (body) SELECT repeat(md5(g::text), 2048) FROM generate_series(1, 1000) g")
    alice = add_user(url, "alice")
    served = start_serve(tmp_path, "--db", url, "--dataset", url)
    pids = []
    try:
        assert status(served, alice, "/api/blobs?limit=2") == 200
        context = ssl.create_default_context(cafile=str(served.ca))
        context.check_hostname = False
        client = http.client.HTTPSConnection("127.0.0.1", served.port, context=context, timeout=30)
        client.request("GET", "/api/blobs?limit=1000", headers={"Authorization": f"Bearer {alice}"})
        reply = client.getresponse()
        assert reply.status == 200 and reply.getheader("transfer-encoding") == "chunked"
        assert reply.read(256 * 1024).startswith(b'{"table":"blobs","rows":[{')
        # The client reads no further: the instance stops reading PostgreSQL, whose backend then waits
        # to write the rest. Stopped there, it is a server that hangs mid-answer.
        assert wait_until(lambda: postgres.superuser(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'ClientWrite'")[0][0] == 1, 15, step=0.1)
        pids = postgres.pause()
        started = time.monotonic()
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            while reply.read(1024 * 1024):
                pass
        assert time.monotonic() - started < 12
        client.close()
        assert status(served, alice) == 200          # verified a moment ago; no wait on the users feed
        quick = time.monotonic()
        assert status(served, alice, "/api/blobs?limit=1") == 503 and time.monotonic() - quick < 8
    finally:
        postgres.resume(pids)
        try:
            assert wait_until(lambda: status(served, alice, "/api/blobs?limit=2") == 200, 20, step=0.3)
            log = served.stderr()
            assert "Traceback" not in log and "application failed" not in log, log
            assert "list of blobs cut off after" in log, log
        finally:
            served.stop()
