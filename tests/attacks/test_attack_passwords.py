"""Password checks an attacker cannot turn into a weapon: bounded work, no user enumeration by timing,
and guessing that cannot starve real users.

The users are the ones an nginx ``auth_basic`` migration brings: Apache ``htpasswd`` hashes (bcrypt of
cost 5 as ``htpasswd -B`` makes them, apr1, ``{SHA}``) next to tlskit's own argon2 users and token-only
users. Timings are compared as medians of interleaved samples, so machine noise hits every case alike.
"""

from __future__ import annotations

import base64
import secrets
import statistics
import threading
import time

import pytest

from conftest import require_binary
from peers_attack import RawConnection, cpu_seconds, peak_rss
from peers_serve import poll_until, start_serve

pytestmark = pytest.mark.slow

ARGON2_PASSWORD = "argon2-user-password"


def basic(name: str, password: str) -> tuple[str, str]:
    return ("Authorization", "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode())


def htpasswd_users(work, served) -> None:
    """bcrypt cost 5 and cost 10, apr1 and {SHA} users, made by Apache's own htpasswd."""
    htpasswd = require_binary("htpasswd")
    import subprocess

    path = work / "htpasswd"
    for flags, name in ((["-B", "-C", "5"], "bcrypt5"), (["-B", "-C", "10"], "bcrypt10"), (["-m"], "apr1"),
                        (["-s"], "sha1")):
        subprocess.run([htpasswd, "-b", *flags, *(["-c"] if not path.exists() else []), str(path), name,
                        f"{name}-password"], check=True, capture_output=True)
    run = served.users("import-htpasswd", str(path), "--methods", "GET")
    assert run.returncode == 0, run.stderr


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    work = tmp_path_factory.mktemp("passwords")
    # Many failures per address are part of these tests: the failure budget is raised out of the way.
    server = start_serve(work, "--max-auth-failures", "100000")
    htpasswd_users(work, server)
    (work / "pw").write_text(ARGON2_PASSWORD + "\n")
    assert server.users("add", "argon2", "--password-file", str(work / "pw")).returncode == 0
    server.extra["token"] = server.add_token_user("tokenonly")
    yield server
    server.stop()


def test_a_password_over_1024_bytes_is_refused_before_any_hashing(served):
    """20 distinct 10 KiB passwords for the apr1 user: each 401, and together almost no server CPU
    (hashing them with apr1 alone would cost about a second)."""
    before = cpu_seconds(served.proc.pid)
    with RawConnection(served.port, served.ca) as conn:
        for _ in range(20):
            reply = conn.request("GET", "/api/products/1", [basic("apr1", secrets.token_hex(5 * 1024))])
            assert reply.status == 401
            assert reply.header("www-authenticate")
    used = cpu_seconds(served.proc.pid) - before
    assert used < 0.4, f"{used:.2f} s of CPU for 20 refused long passwords"


def test_a_password_of_exactly_1024_bytes_still_works(served, tmp_path):
    password = "p" * 1024
    (tmp_path / "long").write_text(password + "\n")
    assert served.users("add", "longpass", "--password-file", str(tmp_path / "long")).returncode == 0
    with RawConnection(served.port, served.ca) as conn:
        assert conn.request("GET", "/api/products/1", [basic("longpass", password)]).status == 200
        assert conn.request("GET", "/api/products/1", [basic("longpass", password + "p")]).status == 401


def test_failures_take_the_same_time_for_unknown_users_and_every_stored_scheme(served):
    cases = {
        "unknown user": "nobody-here",
        "argon2 user": "argon2",
        "bcrypt cost 5 user": "bcrypt5",
        "bcrypt cost 10 user": "bcrypt10",
        "apr1 user": "apr1",
        "{SHA} user": "sha1",
        "token-only user": "tokenonly",
    }
    samples: dict[str, list[float]] = {case: [] for case in cases}
    with RawConnection(served.port, served.ca) as conn:
        for _ in range(7):
            for case, name in cases.items():
                header = basic(name, "wrong-" + secrets.token_hex(8))   # never a cached pair
                started = time.perf_counter()
                reply = conn.request("GET", "/api/products/1", [header])
                samples[case].append(time.perf_counter() - started)
                assert reply.status == 401
    medians = {case: statistics.median(values) for case, values in samples.items()}
    reference = medians["unknown user"]
    report = ", ".join(f"{case} {1000 * m:.0f} ms" for case, m in medians.items())
    for case, median in medians.items():
        assert 0.5 <= median / reference <= 2.0, report


def _guess(port, ca, name, stop: threading.Event, statuses: list[int]) -> None:
    with RawConnection(port, ca, source="127.0.0.2") as conn:
        while not stop.is_set():
            statuses.append(conn.request("GET", "/api/products/1", [basic(name, secrets.token_hex(8))]).status)


def test_forty_guessing_clients_do_not_starve_a_real_login_or_the_memory(tmp_path):
    """40 clients on 127.0.0.2 guess passwords without pause (the failure budget is off here: it is
    tested below); three real users log in from 127.0.0.1, each a first login that needs its slow hash."""
    served = start_serve(tmp_path, "--max-auth-failures", "0")
    try:
        for i in range(3):
            (tmp_path / f"pw{i}").write_text(f"real-password-{i}\n")
            assert served.users("add", f"real{i}", "--password-file", str(tmp_path / f"pw{i}")).returncode == 0
        (tmp_path / "victim").write_text("victim-password\n")
        assert served.users("add", "victim", "--password-file", str(tmp_path / "victim")).returncode == 0
        stop, statuses = threading.Event(), []
        guessers = [threading.Thread(target=_guess, args=(served.port, served.ca, "victim", stop, statuses))
                    for _ in range(40)]
        for thread in guessers:
            thread.start()
        try:
            # The attack is in full swing once every guesser has had answers.
            poll_until(lambda: len(statuses), lambda answered: answered >= 3 * len(guessers), 30)
            waits = []
            with RawConnection(served.port, served.ca) as conn:
                for i in range(3):
                    started = time.monotonic()
                    reply = conn.request("GET", "/api/products/1", [basic(f"real{i}", f"real-password-{i}")])
                    waits.append(time.monotonic() - started)
                    assert reply.status == 200
        finally:
            stop.set()
            for thread in guessers:
                thread.join(timeout=30)
        assert max(waits) < 2.5, [round(w, 2) for w in waits]
        assert len(statuses) > 40 and set(statuses) <= {401, 429}, set(statuses)
        assert peak_rss(served.proc.pid) < 320 * 1024 * 1024, peak_rss(served.proc.pid)
    finally:
        served.stop()


def test_a_failure_budget_per_address_answers_429_without_slowing_tokens_or_verified_pairs(tmp_path):
    # A budget of 5, not the default 20: each wrong password within it costs an argon2 hash (a third of
    # a CPU-second), the rule is the same at any size, and tests/unit/test_throttle.py checks the default.
    served = start_serve(tmp_path, "--max-auth-failures", "5", "--auth-ban-seconds", "60")
    try:
        (tmp_path / "pw").write_text("known-good-password\n")
        assert served.users("add", "carol", "--password-file", str(tmp_path / "pw")).returncode == 0
        token = served.add_token_user("carol-token")
        with RawConnection(served.port, served.ca, source="127.0.0.2") as conn:
            assert conn.request("GET", "/api/products/1", [basic("carol", "known-good-password")]).status == 200
            statuses = [conn.request("GET", "/api/products/1", [basic("carol", f"guess-{i}")]).status
                        for i in range(8)]
            assert statuses[:5] == [401] * 5, statuses
            assert set(statuses[5:]) == {429}, statuses
            refused = conn.request("GET", "/api/products/1", [basic("carol", "guess-again")])
            assert refused.status == 429 and 1 <= int(refused.header("retry-after")) <= 60
            # What needs no slow hash is never slowed: a token, and the pair this address already proved.
            assert conn.request("GET", "/api/products/1", [("Authorization", f"Bearer {token}")]).status == 200
            assert conn.request("GET", "/api/products/1", [basic("carol", "known-good-password")]).status == 200
        with RawConnection(served.port, served.ca, source="127.0.0.1") as conn:      # another address
            assert conn.request("GET", "/api/products/1", [basic("carol", "guess-from-elsewhere")]).status == 401
    finally:
        served.stop()
