"""Two `tlskit serve` instances sharing users in PostgreSQL and limits in Redis, against the same two on
one machine's SQLite (users file + ``--limits-store sqlite:``): what the shared stores cost.

- req/s: authenticated keep-alive GETs (``/api/me``, a Bearer user with an hourly and a concurrent limit,
  so every request is one limits decision), one wrk per instance at once, summed. Target: >= 0.8x the
  SQLite figure (the shared stores must not be the bottleneck).
- the same load against nginx with ``worker_processes 2`` serving the same bytes as a static file behind
  ``auth_basic`` (an apr1 user; nginx re-hashes it on every request): two wrk at once on its one port,
  the same connections each, summed. What two instances with shared stores give next to what a C server
  with two workers and no store at all gives on the same cores.
- latency Redis adds: wrk ``--latency`` p50 and p99 of one instance, a limited user against an
  unlimited one (which never asks Redis), one connection.
- dataset: p50 of ``GET /api/events?kind=...&limit=10`` on a 1,000,000-row PostgreSQL table with an
  index on ``kind``, one connection; the peer is the same GET on the same rows in SQLite. Target:
  p50 < 10 ms.

PostgreSQL and Redis are started as the tests start them (tests/peers_postgres.py, tests/peers_redis.py):
initdb + pg_ctl and redis-server on free 127.0.0.1 ports, in temporary directories, stopped after. On a
2-core machine the servers, both engines and wrk share the cores, for both sides alike.

    .venv/bin/python -m bench.bench_scaleout        # prints the rows as JSON
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

from bench.bench_serve import NGINX_HTTP_HEAD, NGINX_SERVER
from bench.common import ROOT, TLSKIT, Result, need, workdir
from bench.servers import free_port, start_nginx, start_tlskit, stop

# The engines are started by the same code as in the tests, so the bench and the tests agree on them.
sys.path.insert(0, str(ROOT / "tests"))

DURATION = int(os.environ.get("BENCH_SCALEOUT_SECONDS", "5"))
ROWS = int(os.environ.get("BENCH_SCALEOUT_ROWS", "1000000"))
CONNECTIONS = 16        # per instance


def _users(db: str, name: str, *limits: str) -> str:
    done = subprocess.run([*TLSKIT, "users", "add", name, "--token", "--methods", "all", *limits, "--db", db,
                           "--json"], check=True, capture_output=True, text=True)
    return json.loads(done.stdout)["token"]


def _wrk(port: int, token: str, path: str, connections: int, latency: bool = False, header: str | None = None) -> str:
    command = [need("wrk"), "-t1", f"-c{connections}", f"-d{DURATION}s", "-H", header or f"Authorization: Bearer {token}"]
    if latency:
        command.append("--latency")
    command.append(f"https://127.0.0.1:{port}{path}")
    out = subprocess.run(command, capture_output=True, text=True, timeout=DURATION + 60).stdout
    if "Non-2xx" in out or "Requests/sec" not in out:
        raise SystemExit(f"wrk against {path} failed: {out[-400:]}")
    return out


def _rate(out: str) -> float:
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def _percentile_ms(out: str, which: str) -> float:
    value, unit = re.search(rf"^\s+{which}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _together(ports: list[int], token: str, header: str | None = None) -> float:
    """Summed req/s of one wrk per port, run at the same time."""
    outputs: list[str] = []
    threads = [threading.Thread(target=lambda p=p: outputs.append(_wrk(p, token, "/api/me", CONNECTIONS, header=header)))
               for p in ports]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(_rate(out) for out in outputs)


def _nginx_two_workers(work: Path, state: Path, body: bytes) -> float:
    """Summed req/s of two wrk at once against nginx (2 workers, auth_basic, the same bytes as a file)."""
    import base64

    root = work / "nginx-root"
    (root / "api").mkdir(parents=True, exist_ok=True)
    (root / "api" / "me").write_bytes(body)
    apr1 = subprocess.run(["openssl", "passwd", "-apr1", "bench-pass"], capture_output=True, text=True,
                          check=True).stdout.strip()
    (work / "htpasswd").write_text(f"bench:{apr1}\n")
    port = free_port()
    # bench_serve's nginx: a file through try_files (a `return 200` runs before auth_basic and would skip it).
    server = NGINX_SERVER.format(port=port, cert=state / "localhost.pem", key=state / "localhost.key", root=root,
                                 htpasswd=work / "htpasswd")
    proc = start_nginx(work, "nginx-scaleout", server, port, cpu=None, workers=2, user="root",
                       http_head=NGINX_HTTP_HEAD.format(work=work))
    try:
        basic = base64.b64encode(b"bench:bench-pass").decode()
        return _together([port, port], "", header=f"Authorization: Basic {basic}")
    finally:
        stop(proc)


def _instances(work: Path, count: int, *args: str) -> list[tuple[subprocess.Popen, int]]:
    started = []
    try:
        for number in range(count):
            state = work / f"state{number}"
            started.append(start_tlskit(work, "--state-dir", str(state), *args, cpu=None))
    except BaseException:
        for proc, _ in started:
            stop(proc)
        raise
    return started


def _events_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, at INTEGER NOT NULL)")
        db.executemany("INSERT INTO events (kind, at) VALUES (?, ?)",
                       ((f"k{n % 100000}", n) for n in range(1, ROWS + 1)))
        db.execute("CREATE INDEX events_kind ON events (kind)")


def run() -> list[Result]:
    need("wrk")
    from peers_postgres import PostgresServer
    from peers_redis import RedisServer

    work = workdir("scaleout")
    postgres = PostgresServer.start()
    redis = RedisServer.start()
    try:
        url = postgres.new_database()
        import psycopg

        with psycopg.connect(url, autocommit=True) as db:
            db.execute("CREATE TABLE events (id bigserial PRIMARY KEY, kind text NOT NULL, at integer NOT NULL)")
            db.execute("INSERT INTO events (kind, at) SELECT 'k' || (n %% 100000), n FROM generate_series(1, %s) n",
                       (ROWS,))
            db.execute("CREATE INDEX events_kind ON events (kind)")
            db.execute("ANALYZE events")
        sqlite_db = str(work / "users.sqlite")
        limits = ("--max-requests", "100000000", "--max-concurrent", "1000")
        shared = {"pg": _users(url, "tok", *limits), "sqlite": _users(sqlite_db, "tok", *limits),
                  "free": _users(url, "free")}
        events = work / "events.sqlite"
        _events_sqlite(events)

        on_shared = _instances(work, 2, "--db", url, "--dataset", url, "--limits-store", redis.url)
        try:
            shared_rate = _together([port for _, port in on_shared], shared["pg"])
            port = on_shared[0][1]
            limited = _wrk(port, shared["pg"], "/api/me", 1, latency=True)
            free = _wrk(port, shared["free"], "/api/me", 1, latency=True)
            dataset_pg = _wrk(port, shared["free"], "/api/events?kind=k4242&limit=10", 1, latency=True)
            me = subprocess.run(["curl", "-sSk", "-H", f"Authorization: Bearer {shared['pg']}",
                                 f"https://127.0.0.1:{port}/api/me"], capture_output=True, check=True).stdout
        finally:
            for proc, _ in on_shared:
                stop(proc)
        nginx_rate = _nginx_two_workers(work, work / "state0", me)
        on_sqlite = _instances(work, 2, "--db", sqlite_db, "--dataset", str(events),
                               "--limits-store", f"sqlite:{work / 'limits.sqlite'}")
        try:
            sqlite_rate = _together([port for _, port in on_sqlite], shared["sqlite"])
            sqlite_token = _users(sqlite_db, "free")
            dataset_sqlite = _wrk(on_sqlite[0][1], sqlite_token, "/api/events?kind=k4242&limit=10", 1, latency=True)
        finally:
            for proc, _ in on_sqlite:
                stop(proc)
    finally:
        redis.destroy()
        postgres.destroy()

    wrk_text = f"wrk -t1 -c{CONNECTIONS} -d{DURATION}s -H 'Authorization: Bearer <limited user>' .../api/me on each"
    one = f"wrk -t1 -c1 -d{DURATION}s --latency"
    return [
        Result(work="2 instances: authenticated GET req/s, users in PostgreSQL + limits in Redis vs SQLite + sqlite limits",
               tlskit=round(shared_rate, 1), peer=round(sqlite_rate, 1), unit="req/s", better="higher",
               peer_name="same 2 instances on SQLite",
               tlskit_command=f"2x tlskit serve --db postgresql://... --limits-store redis://...; {wrk_text}",
               peer_command=f"2x tlskit serve --db users.sqlite --limits-store sqlite:limits.sqlite; {wrk_text}",
               target=">= 0.8x"),
        Result(work="2 instances (users in PostgreSQL + limits in Redis, limited Bearer user) vs nginx 2 workers, "
                    "static file + auth_basic apr1: req/s (all unpinned, sharing the 2 cores)",
               tlskit=round(shared_rate, 1), peer=round(nginx_rate, 1), unit="req/s", better="higher",
               peer_name="nginx 2 workers auth_basic",
               tlskit_command=f"2x tlskit serve --db postgresql://... --limits-store redis://...; {wrk_text}",
               peer_command=("nginx (worker_processes 2, auth_basic + try_files, the same /api/me bytes and cert); "
                             f"2x wrk -t1 -c{CONNECTIONS} -d{DURATION}s -H 'Authorization: Basic <apr1 user>' "
                             "https://127.0.0.1:PORT/api/me at once"),
               target=">= 0.5x"),
        Result(work="latency Redis limits add per request: p50 (limited user vs unlimited)",
               tlskit=round(_percentile_ms(limited, "50"), 3), peer=round(_percentile_ms(free, "50"), 3), unit="ms",
               better="lower", peer_name="same instance, unlimited user",
               tlskit_command=f"{one} limited user", peer_command=f"{one} unlimited user"),
        Result(work="latency Redis limits add per request: p99 (limited user vs unlimited)",
               tlskit=round(_percentile_ms(limited, "99"), 3), peer=round(_percentile_ms(free, "99"), 3), unit="ms",
               better="lower", peer_name="same instance, unlimited user",
               tlskit_command=f"{one} limited user", peer_command=f"{one} unlimited user"),
        Result(work=f"dataset GET, filter on an indexed column, {ROWS:,}-row table: p50",
               tlskit=round(_percentile_ms(dataset_pg, "50"), 3), peer=round(_percentile_ms(dataset_sqlite, "50"), 3),
               unit="ms", better="lower", peer_name="same rows and index in SQLite",
               tlskit_command=f"{one} .../api/events?kind=k4242&limit=10 (--dataset postgresql://...)",
               peer_command=f"{one} .../api/events?kind=k4242&limit=10 (--dataset events.sqlite)",
               target="< 10 ms (absolute)"),
    ]


if __name__ == "__main__":
    rows = run()
    json.dump([r.as_dict() for r in rows], sys.stdout, indent=2)
    sys.stdout.write("\n")
