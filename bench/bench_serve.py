"""`tlskit serve` vs nginx and Caddy: authenticated GET req/s over TLS keep-alive, and handshakes/s.

Same machine, same run, same certificate (the local CA's localhost certificate made by `tlskit serve`),
same users (one htpasswd file: nginx reads it, tlskit imports it), same JSON body (nginx serves the
bytes tlskit answered, from a file through ``try_files``: nginx's ``return 200`` would skip auth_basic).
Both write an access log.

- 1 worker each: the server pinned to CPU 0 and wrk to CPU 1 (``taskset``).
- 2 workers each (``tlskit serve --workers 2`` vs nginx ``worker_processes 2``): on a 2-core machine wrk
  cannot have a core of its own, so server and wrk all run unpinned and share the cores.
- keep-alive: ``wrk -t1 -c32 -d{D}s`` with Basic credentials. nginx checks the password hash on every
  request; tlskit checks it once and then hits its in-memory verified-credential cache.
- handshakes: the same with ``Connection: close``: every request is a new TCP + TLS handshake.
- bcrypt users have cost 5 (what ``htpasswd -B`` makes by default).
- Caddy (2.6, Debian) as the second peer: ``basicauth`` with the same bcrypt user (Caddy, like tlskit,
  caches a verified password, so this is the fair peer for the cache), ``respond`` with the same JSON
  bytes and headers, the same certificate, an access log to a file, ``GOMAXPROCS=1`` and pinned like
  the others. nginx re-hashes apr1 on every request, which flatters tlskit; Caddy does not.

Runs alternate between the two servers (tlskit, nginx, tlskit, ...) so that noise from anything else on
the machine hits both; each figure is the median of RUNS runs.

    .venv/bin/python -m bench.bench_serve        # prints the rows as JSON
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.common import TLSKIT, Result, need, workdir
from bench.servers import (CLIENT_CPU, SERVER_CPU, free_port, start_caddy, start_nginx, start_tlskit, stop, wrk,
                           wrk_text)

RUNS = int(os.environ.get("BENCH_SERVE_RUNS", "3"))
DURATION = int(os.environ.get("BENCH_SERVE_SECONDS", "5"))
PATH = "/api/products/1"
CREDENTIAL_TEXT = {"apr": "Basic <apr1 user>", "bc": "Basic <bcrypt user>", "bearer": "Bearer <token>"}

NGINX_HTTP_HEAD = """    default_type application/json;
    access_log {work}/nginx-access.log combined;
"""

NGINX_SERVER = """    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        root {root};
        location / {{
            auth_basic "bench";
            auth_basic_user_file {htpasswd};
            add_header Strict-Transport-Security "max-age=31536000; includeSubDomains" always;
            try_files $uri =404;
        }}
    }}"""


@dataclass(frozen=True)
class Layout:
    """Worker count and CPU placement of one set of rows."""

    workers: int
    server_cpu: str | None
    client_cpu: str | None


ONE_WORKER = Layout(1, SERVER_CPU, CLIENT_CPU)
TWO_WORKERS = Layout(2, None, None)  # 2 cores: no core left for wrk, so nothing is pinned


def setup(work: Path) -> dict:
    import bcrypt

    state = work / "state"
    apr1 = subprocess.run(["openssl", "passwd", "-apr1", "apr-bench-pass"], capture_output=True, text=True,
                          check=True).stdout.strip()
    crypted = bcrypt.hashpw(b"bcrypt-bench-pass", bcrypt.gensalt(rounds=5)).decode().replace("$2b$", "$2y$", 1)
    htpasswd = work / "htpasswd"
    htpasswd.write_text(f"apr:{apr1}\nbc:{crypted}\n")
    db = work / "users.sqlite"
    subprocess.run([*TLSKIT, "users", "import-htpasswd", str(htpasswd), "--db", str(db)], check=True,
                   capture_output=True)
    token = json.loads(subprocess.run([*TLSKIT, "users", "add", "tok", "--token", "--db", str(db), "--json"],
                                      check=True, capture_output=True, text=True).stdout)["token"]
    return {"state": state, "db": db, "htpasswd": htpasswd, "token": token, "bc_hash": crypted.replace("$2y$", "$2a$", 1),
            "apr": "Authorization: Basic " + base64.b64encode(b"apr:apr-bench-pass").decode(),
            "bc": "Authorization: Basic " + base64.b64encode(b"bc:bcrypt-bench-pass").decode(),
            "bearer": f"Authorization: Bearer {token}"}


def start_tlskit_serve(work: Path, env: dict, *extra: str, cpu: str | None = SERVER_CPU) -> tuple[subprocess.Popen, int]:
    return start_tlskit(work, "--state-dir", str(env["state"]), "--db", str(env["db"]), *extra, cpu=cpu)


def start_nginx_serve(work: Path, env: dict, layout: Layout = ONE_WORKER) -> tuple[subprocess.Popen, int]:
    port = free_port()
    server = NGINX_SERVER.format(port=port, cert=env["state"] / "localhost.pem", key=env["state"] / "localhost.key",
                                 root=work / "root", htpasswd=env["htpasswd"])
    proc = start_nginx(work, "nginx", server, port, cpu=layout.server_cpu, workers=layout.workers, user="root",
                       http_head=NGINX_HTTP_HEAD.format(work=work))
    return proc, port


CADDY_SITE = """\tbasicauth {{
\t\tbc {hash}
\t}}
\theader Strict-Transport-Security "max-age=31536000; includeSubDomains"
\theader X-Content-Type-Options nosniff
\theader Content-Type application/json
\trespond `{body}` 200"""


def start_caddy_serve(work: Path, env: dict, layout: Layout = ONE_WORKER) -> tuple[subprocess.Popen, int]:
    port = free_port()
    body = (work / "root" / PATH.lstrip("/")).read_text()
    site = CADDY_SITE.format(hash=base64.b64encode(env["bc_hash"].encode()).decode(), body=body)
    proc = start_caddy(work, site, port, env["state"] / "localhost.pem", env["state"] / "localhost.key",
                       cpu=layout.server_cpu)
    return proc, port


def same_body(work: Path, env: dict, tlskit_port: int) -> None:
    """nginx serves exactly the bytes tlskit answers for PATH."""
    body = subprocess.run(["curl", "-sS", "--cacert", str(env["state"] / "ca" / "ca.pem"), "--resolve",
                           f"localhost:{tlskit_port}:127.0.0.1", "-H", env["bearer"],
                           f"https://localhost:{tlskit_port}{PATH}"], capture_output=True, check=True).stdout
    json.loads(body)
    target = work / "root" / PATH.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(body)


def _headers(env: dict, name: str, close: bool) -> list[str]:
    return [env[name], *(["Connection: close"] if close else [])]


def _wrk_text(name: str, close: bool, layout: Layout) -> str:
    headers = [f"Authorization: {CREDENTIAL_TEXT[name]}", *(["Connection: close"] if close else [])]
    return wrk_text(headers, PATH, DURATION, cpu=layout.client_cpu)


PEERS = {"nginx": start_nginx_serve, "caddy": start_caddy_serve}


def measure(work: Path, env: dict, tlskit_header: str, nginx_header: str, close: bool = False,
            tlskit_args: tuple[str, ...] = (), layout: Layout = ONE_WORKER, peer: str = "nginx") -> tuple[float, float]:
    def rate(port: int, header: str, seconds: int = DURATION) -> float:
        return wrk(f"https://127.0.0.1:{port}{PATH}", _headers(env, header, close), seconds, cpu=layout.client_cpu)

    tl, ng = [], []
    workers = ("--workers", str(layout.workers)) if layout.workers > 1 else ()
    tproc, tport = start_tlskit_serve(work, env, *workers, *tlskit_args, cpu=layout.server_cpu)
    nproc, nport = PEERS[peer](work, env, layout)
    try:
        rate(tport, tlskit_header, seconds=2)     # warm up (and fill tlskit's credential cache)
        rate(nport, nginx_header, seconds=2)
        for _ in range(RUNS):
            tl.append(rate(tport, tlskit_header))
            ng.append(rate(nport, nginx_header))
    finally:
        stop(tproc)
        stop(nproc)
    return statistics.median(tl), statistics.median(ng)


# (label, tlskit credential, peer credential, Connection: close, extra tlskit args, target, layout, peer)
CASES = [
    ("keep-alive GET, apr1 user", "apr", "apr", False, (), ">= 0.8x", ONE_WORKER, "nginx"),
    ("keep-alive GET, bcrypt user", "bc", "bc", False, (), ">= 1x", ONE_WORKER, "nginx"),
    ("keep-alive GET, token (Bearer) vs nginx apr1", "bearer", "apr", False, (), ">= 0.5x", ONE_WORKER, "nginx"),
    ("keep-alive GET, apr1 user, tlskit --no-access-log", "apr", "apr", False, ("--no-access-log",), "", ONE_WORKER,
     "nginx"),
    ("new connection per GET (handshakes/s), apr1 user", "apr", "apr", True, (), ">= 0.5x", ONE_WORKER, "nginx"),
    ("keep-alive GET, bcrypt user vs Caddy basicauth", "bc", "bc", False, (), ">= 0.5x", ONE_WORKER, "caddy"),
    ("new connection per GET (handshakes/s), bcrypt user vs Caddy", "bc", "bc", True, (), ">= 0.8x", ONE_WORKER,
     "caddy"),
    ("keep-alive GET, apr1 user", "apr", "apr", False, (), ">= 0.5x", TWO_WORKERS, "nginx"),
    ("keep-alive GET, bcrypt user", "bc", "bc", False, (), ">= 1x", TWO_WORKERS, "nginx"),
    ("new connection per GET (handshakes/s), apr1 user", "apr", "apr", True, (), ">= 0.5x", TWO_WORKERS, "nginx"),
]

PEER_TEXT = {
    "nginx": "nginx ({workers}, auth_basic + try_files, same cert and JSON)",
    "caddy": "GOMAXPROCS=1 caddy 2.6 (basicauth bcrypt + respond, access log, same cert and JSON)",
}


def run() -> list[Result]:
    for binary in ("wrk", "nginx", "caddy", "openssl", "curl"):
        need(binary)
    work = workdir("serve")
    env = setup(work)
    proc, port = start_tlskit_serve(work, env)        # zero-config: makes the CA and the localhost certificate
    try:
        same_body(work, env, port)
    finally:
        stop(proc)
    results = []
    for label, theirs, peer_header, close, extra, target, layout, peer_kind in CASES:
        ours, peer = measure(work, env, theirs, peer_header, close, extra, layout, peer_kind)
        unit = "handshakes/s" if close else "req/s"
        workers = f"{layout.workers} worker{'s' if layout.workers > 1 else ''}"
        peer_text = PEER_TEXT[peer_kind].format(workers=workers if layout.workers == 1 else
                                                f"worker_processes {layout.workers}")
        if layout.workers == 1:
            work_text = f"serve: {label}"
            tlskit_cmd = f"taskset -c {SERVER_CPU} tlskit serve --state-dir S --db users.sqlite --port PORT"
            peer_cmd = f"taskset -c {SERVER_CPU} {peer_text}"
        else:
            work_text = (f"serve --workers {layout.workers}: {label} "
                         f"(server and wrk unpinned, sharing the {os.cpu_count()} cores)")
            tlskit_cmd = f"tlskit serve --workers {layout.workers} --state-dir S --db users.sqlite --port PORT"
            peer_cmd = peer_text
        peer_name = "caddy 1 thread basicauth" if peer_kind == "caddy" else f"nginx {workers} auth_basic"
        results.append(Result(
            work=work_text, tlskit=round(ours, 1), peer=round(peer, 1), unit=unit, better="higher",
            peer_name=peer_name, tlskit_command=f"{' '.join([tlskit_cmd, *extra])}; {_wrk_text(theirs, close, layout)}",
            peer_command=f"{peer_cmd}; {_wrk_text(peer_header, close, layout)}", target=target))
    return results


if __name__ == "__main__":
    rows = run()
    json.dump([r.as_dict() for r in rows], sys.stdout, indent=2)
    sys.stdout.write("\n")
