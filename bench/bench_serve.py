"""`tlskit serve` vs nginx: authenticated GET req/s over TLS keep-alive, and new-connection handshakes/s.

Same machine, same run, same certificate (the local CA's localhost certificate made by `tlskit serve`),
same users (one htpasswd file: nginx reads it, tlskit imports it), same JSON body (nginx serves the
bytes tlskit answered, from a file through ``try_files``: nginx's ``return 200`` would skip auth_basic).
One worker each, the server pinned to CPU 0 and wrk to CPU 1 (``taskset``). Both write an access log.

- keep-alive: ``wrk -t1 -c32 -d{D}s`` with Basic credentials. nginx checks the password hash on every
  request; tlskit checks it once and then hits its in-memory verified-credential cache.
- handshakes: the same with ``Connection: close``: every request is a new TCP + TLS handshake.
- bcrypt users have cost 5 (what ``htpasswd -B`` makes by default).

Runs alternate between the two servers (tlskit, nginx, tlskit, ...) so that noise from anything else on
the machine hits both; each figure is the median of RUNS runs.

    .venv/bin/python -m bench.bench_serve        # prints the rows as JSON
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import ROOT, TLSKIT, Result, need, workdir

RUNS = int(os.environ.get("BENCH_SERVE_RUNS", "3"))
DURATION = int(os.environ.get("BENCH_SERVE_SECONDS", "5"))
CONNECTIONS = 32
PATH = "/api/products/1"
SERVER_CPU, CLIENT_CPU = "0", "1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on {port}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _pin(cpu: str) -> list[str]:
    return ["taskset", "-c", cpu] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


def wrk(port: int, header: str, close: bool = False, seconds: int = DURATION) -> float:
    command = [*_pin(CLIENT_CPU), need("wrk"), "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "-H", header]
    if close:
        command += ["-H", "Connection: close"]
    command.append(f"https://127.0.0.1:{port}{PATH}")
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60).stdout
    if "Non-2xx" in out or "Socket errors" in out and "connect 0, read 0, write 0, timeout 0" not in out:
        bad = [line.strip() for line in out.splitlines() if "Non-2xx" in line or "Socket errors" in line]
        raise SystemExit(f"wrk saw failures against port {port}: {'; '.join(bad)}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise SystemExit(f"cannot read wrk output: {out[-300:]}")
    return float(match.group(1))


def wrk_command_text(header_name: str, close: bool = False) -> str:
    extra = ' -H "Connection: close"' if close else ""
    credential = {"apr": "Basic <apr1 user>", "bc": "Basic <bcrypt user>", "bearer": "Bearer <token>"}[header_name]
    return (f'taskset -c {CLIENT_CPU} wrk -t1 -c{CONNECTIONS} -d{DURATION}s -H "Authorization: {credential}"'
            f"{extra} https://127.0.0.1:PORT{PATH}")


NGINX_CONF = """
worker_processes 1;
daemon off;
master_process on;
user root;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    default_type application/json;
    access_log {work}/nginx-access.log combined;
    client_body_temp_path {work}/tmp/body;
    proxy_temp_path {work}/tmp/proxy;
    fastcgi_temp_path {work}/tmp/fastcgi;
    uwsgi_temp_path {work}/tmp/uwsgi;
    scgi_temp_path {work}/tmp/scgi;
    keepalive_requests 1000000;
    server {{
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
    }}
}}
"""


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
    return {"state": state, "db": db, "htpasswd": htpasswd, "token": token,
            "apr": "Authorization: Basic " + base64.b64encode(b"apr:apr-bench-pass").decode(),
            "bc": "Authorization: Basic " + base64.b64encode(b"bc:bcrypt-bench-pass").decode(),
            "bearer": f"Authorization: Bearer {token}"}


def start_tlskit(work: Path, env: dict, *extra: str) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    log = open(work / f"tlskit-access-{port}.log", "wb")
    proc = subprocess.Popen([*_pin(SERVER_CPU), *TLSKIT, "serve", "--state-dir", str(env["state"]), "--db", str(env["db"]),
                             "--port", str(port), *extra], stdout=log, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    _wait_port(port, proc, "tlskit serve")
    return proc, port


def start_nginx(work: Path, env: dict) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    (work / "tmp").mkdir(exist_ok=True)
    conf = work / "nginx.conf"
    conf.write_text(NGINX_CONF.format(work=work, port=port, cert=env["state"] / "localhost.pem",
                                      key=env["state"] / "localhost.key", root=work / "root",
                                      htpasswd=env["htpasswd"]))
    proc = subprocess.Popen([*_pin(SERVER_CPU), need("nginx"), "-p", str(work), "-c", str(conf), "-e", str(work / "nginx-error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    _wait_port(port, proc, "nginx")
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


def measure(work: Path, env: dict, tlskit_header: str, nginx_header: str, close: bool = False,
            tlskit_args: tuple[str, ...] = ()) -> tuple[float, float]:
    tl, ng = [], []
    tproc, tport = start_tlskit(work, env, *tlskit_args)
    nproc, nport = start_nginx(work, env)
    try:
        wrk(tport, env[tlskit_header], close, seconds=2)     # warm up (and fill tlskit's credential cache)
        wrk(nport, env[nginx_header], close, seconds=2)
        for _ in range(RUNS):
            tl.append(wrk(tport, env[tlskit_header], close))
            ng.append(wrk(nport, env[nginx_header], close))
    finally:
        _stop(tproc)
        _stop(nproc)
    return statistics.median(tl), statistics.median(ng)


def run() -> list[Result]:
    need("wrk")
    need("nginx")
    need("openssl")
    need("curl")
    work = workdir("serve")
    env = setup(work)
    proc, port = start_tlskit(work, env)        # zero-config: makes the CA and the localhost certificate
    try:
        same_body(work, env, port)
    finally:
        _stop(proc)
    tlskit_cmd = f"taskset -c {SERVER_CPU} tlskit serve --state-dir S --db users.sqlite --port PORT"
    nginx_cmd = f"taskset -c {SERVER_CPU} nginx (1 worker, auth_basic + try_files, same cert and JSON)"
    results = []
    cases = [
        ("keep-alive GET, apr1 user", "apr", "apr", False, (), ">= 0.5x"),
        ("keep-alive GET, bcrypt user", "bc", "bc", False, (), ">= 1x"),
        ("keep-alive GET, token (Bearer) vs nginx apr1", "bearer", "apr", False, (), ">= 0.5x"),
        ("keep-alive GET, apr1 user, tlskit --no-access-log", "apr", "apr", False, ("--no-access-log",), ""),
        ("new connection per GET (handshakes/s), apr1 user", "apr", "apr", True, (), ">= 0.5x"),
    ]
    for label, theirs, peer_header, close, extra, target in cases:
        ours, peer = measure(work, env, theirs, peer_header, close, extra)
        unit = "handshakes/s" if close else "req/s"
        results.append(Result(
            work=f"serve: {label}", tlskit=round(ours, 1), peer=round(peer, 1), unit=unit, better="higher",
            peer_name="nginx 1 worker auth_basic",
            tlskit_command=f"{' '.join([tlskit_cmd, *extra])}; {wrk_command_text(theirs, close)}",
            peer_command=f"{nginx_cmd}; {wrk_command_text(peer_header, close)}", target=target))
    return results


if __name__ == "__main__":
    rows = run()
    json.dump([r.as_dict() for r in rows], sys.stdout, indent=2)
    sys.stdout.write("\n")
