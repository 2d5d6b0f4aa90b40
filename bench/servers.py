"""Starting, loading and stopping servers for the server benches (bench_serve.py, bench_proxy.py).

One place for what both need: a free loopback port, waiting for a server to listen, stopping it,
CPU pinning with ``taskset``, running wrk and reading its Requests/sec, an nginx with its own
prefix, config and temp paths under the bench's work directory, and ``tlskit serve`` started for a
bench (pinned, access log to a file). Servers bind 127.0.0.1 only.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from bench.common import TLSKIT, need

# The server under test on one core, the load generator (and anything helping it) on the other.
SERVER_CPU, CLIENT_CPU = "0", "1"
CONNECTIONS = 32


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    """Return once ``port`` accepts connections; stop the bench if ``proc`` died or never listened."""
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


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM (nginx and tlskit both shut down their workers on it), SIGKILL after 15 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_or_stop(port: int, proc: subprocess.Popen, what: str) -> None:
    """wait_port, stopping ``proc`` when it never listens, so a failed start leaves no server behind."""
    try:
        wait_port(port, proc, what)
    except BaseException:
        stop(proc)
        raise


def pin(cpu: str | None) -> list[str]:
    """``taskset -c CPU`` prefix; nothing when ``cpu`` is None, taskset is missing or there is one core."""
    if cpu is None:
        return []
    return ["taskset", "-c", cpu] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


def wrk(url: str, headers: list[str], seconds: int, cpu: str | None = CLIENT_CPU,
        connections: int = CONNECTIONS) -> float:
    """Requests/sec of ``wrk -t1 -cN -dSs`` against ``url``; any non-2xx answer or socket error stops the bench."""
    command = [*pin(cpu), need("wrk"), "-t1", f"-c{connections}", f"-d{seconds}s"]
    for header in headers:
        command += ["-H", header]
    command.append(url)
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60).stdout
    return parse_wrk(out, url)


def parse_wrk(out: str, url: str) -> float:
    """Requests/sec from wrk's report, refusing a run that saw failures (their rate means nothing)."""
    if "Non-2xx" in out or ("Socket errors" in out and "connect 0, read 0, write 0, timeout 0" not in out):
        bad = [line.strip() for line in out.splitlines() if "Non-2xx" in line or "Socket errors" in line]
        raise SystemExit(f"wrk saw failures against {url}: {'; '.join(bad)}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise SystemExit(f"cannot read wrk output: {out[-300:]}")
    return float(match.group(1))


def wrk_text(headers: list[str], path: str, seconds: int, cpu: str | None = CLIENT_CPU,
             connections: int = CONNECTIONS) -> str:
    """The wrk command as the results show it (credentials given as placeholders by the caller)."""
    prefix = f"taskset -c {cpu} " if cpu is not None else ""
    options = "".join(f' -H "{header}"' for header in headers)
    return f"{prefix}wrk -t1 -c{connections} -d{seconds}s{options} https://127.0.0.1:PORT{path}"


# The parts of an nginx config every bench nginx shares: foreground, its own pid/error log, and every
# temp path under the work directory (nginx-light's defaults are under /var/lib/nginx).
_NGINX_MAIN = """
worker_processes {workers};
daemon off;
master_process on;
{user}pid {work}/{name}.pid;
error_log {work}/{name}-error.log warn;
events {{ worker_connections 4096; }}
http {{
{http_head}    client_body_temp_path {work}/tmp/body;
    proxy_temp_path {work}/tmp/proxy;
    fastcgi_temp_path {work}/tmp/fastcgi;
    uwsgi_temp_path {work}/tmp/uwsgi;
    scgi_temp_path {work}/tmp/scgi;
    keepalive_requests 1000000;
{http}
}}
"""


def start_nginx(work: Path, name: str, http: str, port: int, cpu: str | None = SERVER_CPU, workers: int = 1,
                user: str | None = None, http_head: str = "") -> subprocess.Popen:
    """nginx with prefix ``work``, config ``work/NAME.conf`` (``http`` goes inside its http block).

    Waits until ``port`` (which ``http`` must listen on) accepts connections. ``user`` sets nginx's
    ``user`` directive (workers run as nobody by default when started as root); ``http_head`` is put at
    the top of the http block.
    """
    (work / "tmp").mkdir(exist_ok=True)
    conf = work / f"{name}.conf"
    conf.write_text(_NGINX_MAIN.format(workers=workers, user=f"user {user};\n" if user else "", work=work, name=name,
                                       http_head=http_head, http=http))
    proc = subprocess.Popen([*pin(cpu), need("nginx"), "-p", str(work), "-c", str(conf),
                             "-e", str(work / f"{name}-error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    _wait_or_stop(port, proc, name)
    return proc


def start_tlskit(work: Path, *args: str, cpu: str | None = SERVER_CPU,
                 log: str = "tlskit-access-{port}.log") -> tuple[subprocess.Popen, int]:
    """``tlskit serve --port PORT ARGS...`` on a free port; its access log (stdout) goes to ``work/LOG``.

    ``log`` may name the port (``{port}``), so that successive servers keep their own logs.
    """
    port = free_port()
    with open(work / log.format(port=port), "wb") as out:
        proc = subprocess.Popen([*pin(cpu), *TLSKIT, "serve", "--port", str(port), *args], stdout=out,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    _wait_or_stop(port, proc, "tlskit serve")
    return proc, port


CADDYFILE = """{{
\tadmin off
\tauto_https off
\tdefault_sni localhost
\tstorage file_system {work}/caddy-data
}}
https://localhost:{port}, https://127.0.0.1:{port} {{
\ttls {cert} {key}
\tlog {{
\t\toutput file {work}/caddy-access-{port}.log
\t}}
{site}
}}
"""


def start_caddy(work: Path, site: str, port: int, cert: Path, key: Path,
                cpu: str | None = SERVER_CPU) -> subprocess.Popen:
    """Caddy on ``port`` with ``site`` inside its site block (TLS from ``cert``/``key``, an access log).

    One OS thread runs Go code (``GOMAXPROCS=1``), so it is one core like one nginx worker or one tlskit
    worker; it is pinned like them.
    """
    conf = work / f"Caddyfile-{port}"
    conf.write_text(CADDYFILE.format(work=work, port=port, cert=cert, key=key, site=site))
    env = {**os.environ, "GOMAXPROCS": "1", "HOME": str(work), "XDG_DATA_HOME": str(work / "caddy-data"),
           "XDG_CONFIG_HOME": str(work / "caddy-config")}
    proc = subprocess.Popen([*pin(cpu), need("caddy"), "run", "--config", str(conf), "--adapter", "caddyfile"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            env=env)
    _wait_or_stop(port, proc, "caddy")
    return proc
