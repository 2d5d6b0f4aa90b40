"""Shared fixtures: running tlskit as a user would, and finding real peers (openssl, curl, pebble...).

A test that needs a peer binary calls ``require_binary``: outside CI a missing peer skips the test;
in CI (CI=true) it fails, because `make test` is supposed to have installed it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (make test installs it)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self):
        import json

        return json.loads(self.stdout)


def run_tlskit(*args: str, cwd: Path | str | None = None, input: str | None = None, timeout: float = 120,
               env: dict[str, str] | None = None) -> Run:
    """Run the CLI in a subprocess exactly as a user would (no stdin unless ``input`` is given)."""
    full_env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    completed = subprocess.run(
        [sys.executable, "-m", "tlskit", *args], cwd=cwd, input=input, capture_output=True, text=True,
        timeout=timeout, env=full_env, stdin=None if input is not None else subprocess.DEVNULL,
    )
    return Run(completed.returncode, completed.stdout, completed.stderr)


def openssl(*args: str, input: bytes | None = None, check: bool = True, cwd: Path | str | None = None) -> subprocess.CompletedProcess:
    binary = require_binary("openssl")
    result = subprocess.run([binary, *args], input=input, capture_output=True, cwd=cwd, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed: {result.stderr.decode(errors='replace')}")
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 30, *,
                  host: str = "127.0.0.1", tls: ssl.SSLContext | None = None, log: Path | None = None) -> None:
    """Return once ``host:port`` accepts a connection (with ``tls``: completes a TLS handshake too).

    For peers started in the background: raises AssertionError if ``proc`` exits first, or after
    ``timeout`` seconds. The message ends with the peer's output: the text of ``log`` when given,
    else what ``proc`` wrote to its stdout pipe (read only once it has exited). Stopping ``proc``
    on failure is the caller's job.
    """
    def fail(problem: str, exited: bool) -> AssertionError:
        output = log.read_text(errors="replace") if log else ""
        if exited and not log and proc.stdout:
            output = proc.stdout.read()
            output = output.decode(errors="replace") if isinstance(output, bytes) else output
        return AssertionError(f"{problem}: {output}" if output else problem)

    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise fail(f"{' '.join(map(str, proc.args[:4]))} exited with {proc.returncode}", exited=True)
        try:
            with socket.create_connection((host, port), timeout=1) as sock:
                if tls is None:
                    return
                with tls.wrap_socket(sock):
                    return
        except OSError:  # refused, or (ssl.SSLError) the TLS side is not ready yet
            if time.monotonic() >= deadline:
                raise fail(f"nothing answered on {host}:{port} within {timeout:g}s", exited=False) from None
            time.sleep(0.02)


def stop_process(proc: subprocess.Popen, timeout: float = 15) -> int:
    """SIGTERM (a clean shutdown, as Ctrl-C or systemd would ask), SIGKILL after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return proc.returncode


def assert_one_line_error(run: Run, code: int = 2, contains: str | None = None) -> None:
    """The CLI error contract: non-zero exit, one `error:` line on stderr, no traceback."""
    assert run.returncode == code, (run.returncode, run.stdout, run.stderr)
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("error: "), run.stderr
    assert "Traceback" not in run.stderr
    if contains:
        assert contains.lower() in lines[0].lower(), lines[0]


@pytest.fixture
def tlskit():
    return run_tlskit


# Under `make mutation` (mutmut sets MUTANT_UNDER_TEST) a test must give the same answer for every mutant:
# hypothesis then replays a fixed sequence of examples instead of searching anew on each run.
if "MUTANT_UNDER_TEST" in os.environ:
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("mutation", derandomize=True, database=None)
    _hypothesis_settings.load_profile("mutation")
