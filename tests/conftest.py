"""Shared fixtures: running tlskit as a user would, and finding real peers (openssl, curl, pebble...).

A test that needs a peer binary calls ``require_binary``: outside CI a missing peer skips the test;
in CI (CI=true) it fails, because `make test` is supposed to have installed it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
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
