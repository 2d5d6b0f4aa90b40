"""A real `tlskit serve` for tests: a subprocess on a free 127.0.0.1 port with its own state dir.

``Served.curl(...)`` drives it with the curl binary (always resolving localhost to 127.0.0.1, trusting
the server's CA) and returns status, headers and body. The server is always terminated on exit.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from conftest import free_port, require_binary, run_tlskit, stop_process, wait_for_port
from tlskit_processes import start_tlskit


def poll_until(read, done, timeout: float = 10.0, interval: float = 0.05):
    """Call ``read()`` until ``done(value)`` holds and return that value; fail with the last one at the deadline.

    What tests wait for (a log flush, a users-database reload) happens on the server's clock, so a
    fixed sleep is either too long or, on a loaded machine, too short.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout:g} s; last seen: {value!r}"[:2000])
        time.sleep(interval)


@dataclass
class Reply:
    status: int
    headers: dict[str, list[str]]
    body: bytes
    returncode: int
    stderr: str

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def json(self):
        return json.loads(self.body)


@dataclass
class Served:
    proc: subprocess.Popen  # or tlskit_processes.TlskitProcess, which answers the same calls
    port: int
    state_dir: Path
    stdout_path: Path
    stderr_path: Path
    redirect_port: int | None = None
    ca: Path | None = None
    db: Path | str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def curl(self, path: str = "/api", *args: str, method: str | None = None, data: str | None = None,
             interface: str | None = None, scheme_port: str | None = None) -> Reply:
        curl = require_binary("curl")
        work = self.state_dir.parent
        headers_file = work / f"h{os.getpid()}_{time.monotonic_ns()}"
        body_file = work / f"b{os.getpid()}_{time.monotonic_ns()}"
        base = scheme_port or self.url
        # --globoff: a path is sent as written ({...} and [...] are not curl's URL patterns here).
        command = [curl, "-sS", "--globoff", "--max-time", "30", "--resolve", f"localhost:{self.port}:127.0.0.1",
                   "-D", str(headers_file), "-o", str(body_file), "-w", "%{http_code}"]
        if self.ca:
            command += ["--cacert", str(self.ca)]
        if method:
            command += ["-X", method]
        if data is not None:
            command += ["-H", "Content-Type: application/json", "--data-binary", data]
        if interface:
            command += ["--interface", interface]
        command += [*args, base + path]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        headers: dict[str, list[str]] = {}
        if headers_file.exists():
            for line in headers_file.read_text("latin-1").splitlines()[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers.setdefault(name.strip().lower(), []).append(value.strip())
            headers_file.unlink()
        body = body_file.read_bytes() if body_file.exists() else b""
        body_file.unlink(missing_ok=True)
        status = int(done.stdout.strip() or 0)
        return Reply(status, headers, body, done.returncode, done.stderr)

    def users(self, *args: str):
        return run_tlskit("users", *args, "--db", str(self.db))

    def add_token_user(self, name: str, methods: str = "GET") -> str:
        run = self.users("add", name, "--token", "--methods", methods, "--json")
        assert run.returncode == 0, run.stderr
        return run.json["token"]

    def access_log(self, until: str, count: int = 1, timeout: float = 10.0) -> str:
        """Everything logged so far, once ``until`` appears in it ``count`` times (the log is flushed at
        least once a second: the request a test made is in it by then, and so is anything logged before)."""
        return poll_until(self.stdout_path.read_text, lambda text: text.count(until) >= count, timeout)

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def stop(self) -> int:
        return stop_process(self.proc, timeout=15)


def launch_serve(state_dir: Path, *options: str, port: int, stdout_path: Path, stderr_path: Path,
                 env: dict[str, str] | None = None, timeout: float = 30):
    """Start `tlskit serve --port PORT --state-dir STATE_DIR OPTIONS` and return its process once a TLS
    handshake on the port succeeds (stopped again if it never does). stdout and stderr go to the files."""
    command = ["serve", "--port", str(port), "--state-dir", str(state_dir), *options]
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        proc = start_tlskit(command, stdout=out, stderr=err, env={**os.environ, "NO_COLOR": "1", **(env or {})})
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        wait_for_port(port, proc, timeout, tls=context, log=stderr_path)
    except AssertionError:
        stop_process(proc, timeout=15)
        raise
    return proc


def start_serve(work: Path, *args: str, state_dir: Path | None = None, port: int | None = None,
                redirect: bool = False, timeout: float = 30) -> Served:
    """Start `tlskit serve` and wait until it accepts TLS connections. Call ``.stop()`` (or use serving())."""
    state_dir = state_dir or work / "state"
    port = port or free_port()
    redirect_port = free_port() if redirect else None
    stdout_path, stderr_path = work / f"serve{port}.out", work / f"serve{port}.err"
    if redirect_port:
        args = (*args, "--redirect-port", str(redirect_port))
    proc = launch_serve(state_dir, *args, port=port, stdout_path=stdout_path, stderr_path=stderr_path,
                        timeout=timeout)
    served = Served(proc, port, state_dir, stdout_path, stderr_path, redirect_port)
    deadline = time.monotonic() + timeout
    # The banner is written just before the sockets accept; wait for it so tests can read it.
    while "Stop with Ctrl-C" not in stderr_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    if "--cert" not in args:
        served.ca = state_dir / "ca" / "ca.pem"
    db = next((args[i + 1] for i, a in enumerate(args) if a == "--db"), None)
    # A postgresql:// URL stays text: a Path would fold its "//".
    served.db = (db if "://" in db else Path(db)) if db else state_dir / "users.sqlite"
    return served
