"""`tlskit serve --upstream` vs nginx `proxy_pass`: authenticated proxied GET req/s over TLS keep-alive.

The same upstream application for both: an nginx answering a small JSON body with ``return 200`` on a
plain-HTTP loopback port (cheap, so the figure is the proxy's cost, not the application's). Same
certificate, same user (an apr1 htpasswd entry: nginx checks it with ``auth_basic`` on every request,
tlskit imports it and caches the verification), same credentials on every request, access logs on for
both. nginx keeps a pool of upstream keep-alive connections (``keepalive 64`` + HTTP/1.1), as tlskit does.

Rows:
- proxied GET through tlskit serve vs nginx proxy_pass + auth_basic (what each is deployed as);
- the same against nginx proxy_pass without auth_basic (nginx's pure proxy cost, the strictest peer).

The servers under test are pinned to CPU 0, wrk and the upstream to CPU 1 (``taskset``); runs
alternate between the two servers and each figure is the median of RUNS runs.

    .venv/bin/python -m bench.bench_proxy      # prints the rows as JSON
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
import time
from pathlib import Path

from bench.common import TLSKIT, Result, need, workdir

RUNS = int(os.environ.get("BENCH_PROXY_RUNS", "3"))
DURATION = int(os.environ.get("BENCH_PROXY_SECONDS", "5"))
CONNECTIONS = 32
PATH = "/app/items?id=1"
SERVER_CPU, CLIENT_CPU = "0", "1"
BODY = '{"id":1,"name":"widget","price":9.5}'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pin(cpu: str) -> list[str]:
    return ["taskset", "-c", cpu] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


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


def wrk(port: int, header: str, seconds: int = DURATION) -> float:
    command = [*_pin(CLIENT_CPU), need("wrk"), "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "-H", header,
               f"https://127.0.0.1:{port}{PATH}"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60).stdout
    if "Non-2xx" in out or ("Socket errors" in out and "connect 0, read 0, write 0, timeout 0" not in out):
        bad = [line.strip() for line in out.splitlines() if "Non-2xx" in line or "Socket errors" in line]
        raise SystemExit(f"wrk saw failures against port {port}: {'; '.join(bad)}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise SystemExit(f"cannot read wrk output: {out[-300:]}")
    return float(match.group(1))


_NGINX_COMMON = """
worker_processes 1;
daemon off;
master_process on;
pid {work}/{name}.pid;
error_log {work}/{name}-error.log warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {work}/tmp/body;
    proxy_temp_path {work}/tmp/proxy;
    fastcgi_temp_path {work}/tmp/fastcgi;
    uwsgi_temp_path {work}/tmp/uwsgi;
    scgi_temp_path {work}/tmp/scgi;
    keepalive_requests 1000000;
{body}
}}
"""

UPSTREAM_CONF = """
    access_log off;
    server {{
        listen 127.0.0.1:{port};
        location / {{ default_type application/json; return 200 '{answer}'; }}
    }}
"""

PROXY_CONF = """
    access_log {work}/{name}-access.log combined;
    upstream app {{ server 127.0.0.1:{upstream}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{
            {auth}
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "";
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-User $remote_user;
            add_header Strict-Transport-Security "max-age=31536000; includeSubDomains" always;
        }}
    }}
"""


def start_nginx(work: Path, name: str, body: str, port: int, cpu: str) -> subprocess.Popen:
    (work / "tmp").mkdir(exist_ok=True)
    conf = work / f"{name}.conf"
    conf.write_text(_NGINX_COMMON.format(work=work, name=name, body=body))
    proc = subprocess.Popen([*_pin(cpu), need("nginx"), "-p", str(work), "-c", str(conf),
                             "-e", str(work / f"{name}-error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    _wait_port(port, proc, name)
    return proc


def run() -> list[Result]:
    need("nginx")
    need("wrk")
    work = workdir("proxy")
    state = work / "state"
    apr1 = subprocess.run(["openssl", "passwd", "-apr1", "proxy-bench-pass"], capture_output=True, text=True,
                          check=True).stdout.strip()
    htpasswd = work / "htpasswd"
    htpasswd.write_text(f"bench:{apr1}\n")
    subprocess.run([*TLSKIT, "users", "import-htpasswd", str(htpasswd), "--state-dir", str(state)], check=True,
                   capture_output=True)
    header = "Authorization: Basic " + base64.b64encode(b"bench:proxy-bench-pass").decode()

    upstream_port = _free_port()
    upstream = start_nginx(work, "upstream", UPSTREAM_CONF.format(port=upstream_port, answer=BODY),
                           upstream_port, CLIENT_CPU)
    procs = [upstream]
    try:
        tport = _free_port()
        log = open(work / "tlskit-access.log", "wb")
        tlskit = subprocess.Popen([*_pin(SERVER_CPU), *TLSKIT, "serve", "--state-dir", str(state), "--port", str(tport),
                                   "--upstream", f"http://127.0.0.1:{upstream_port}"],
                                  stdout=log, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        procs.append(tlskit)
        _wait_port(tport, tlskit, "tlskit serve")
        cert, key = state / "localhost.pem", state / "localhost.key"
        peers = {}
        for name, auth in (("nginx-auth", f'auth_basic "bench"; auth_basic_user_file {htpasswd};'),
                           ("nginx-noauth", "")):
            port = _free_port()
            body = PROXY_CONF.format(work=work, name=name, upstream=upstream_port, port=port, cert=cert, key=key,
                                     auth=auth)
            procs.append(start_nginx(work, name, body, port, SERVER_CPU))
            peers[name] = port
        # Same answer through both proxies (and the upstream really is behind them).
        for port in (tport, *peers.values()):
            got = subprocess.run(["curl", "-sSk", "-H", header, f"https://127.0.0.1:{port}{PATH}"],
                                 capture_output=True, text=True, check=True).stdout
            if got != BODY:
                raise SystemExit(f"port {port} answered {got!r}, not the upstream's body")
        for port in (tport, *peers.values()):
            wrk(port, header, seconds=2)  # warm-up: connections, tlskit's credential cache
        figures: dict[str, list[float]] = {"tlskit": [], **{n: [] for n in peers}}
        for _ in range(RUNS):
            figures["tlskit"].append(wrk(tport, header))
            for name, port in peers.items():
                figures[name].append(wrk(port, header))
    finally:
        for proc in reversed(procs):
            _stop(proc)
    tl = statistics.median(figures["tlskit"])
    wrk_text = f'taskset -c {CLIENT_CPU} wrk -t1 -c{CONNECTIONS} -d{DURATION}s -H "Authorization: Basic <apr1 user>" https://127.0.0.1:PORT{PATH}'
    tlskit_text = f"tlskit serve --upstream http://127.0.0.1:UP (apr1 user imported); {wrk_text}"
    return [
        Result("proxied GET req/s, TLS keep-alive, apr1 user (tlskit --upstream vs nginx proxy_pass + auth_basic)",
               tl, statistics.median(figures["nginx-auth"]), "req/s", "higher", "nginx 1 worker",
               tlskit_text, f"nginx proxy_pass + auth_basic, upstream keepalive 64; {wrk_text}", target=">= 0.5x"),
        Result("proxied GET req/s, TLS keep-alive (tlskit --upstream with auth vs nginx proxy_pass, no auth)",
               tl, statistics.median(figures["nginx-noauth"]), "req/s", "higher", "nginx 1 worker",
               tlskit_text, f"nginx proxy_pass, no auth_basic, upstream keepalive 64; {wrk_text}"),
    ]


if __name__ == "__main__":
    print(json.dumps([r.as_dict() for r in run()], indent=2))
