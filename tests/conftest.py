"""Shared fixtures: running tlskit as a user would, and finding real peers (openssl, curl, pebble...).

A test that needs a peer binary calls ``require_binary``: outside CI a missing peer skips the test;
in CI (CI=true) it fails, because `make test` is supposed to have installed it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
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
               env: dict[str, str] | None = None, isolated: bool = False) -> Run:
    """Run the CLI as a user would: the same entry point, arguments, environment, working directory and
    exit code, with stdout and stderr captured and no stdin unless ``input`` is given.

    It runs inside the test process (a new interpreter costs ~0.3 s of CPU, and the suite runs the CLI
    hundreds of times), except where only a process of its own behaves like the real thing: text on
    stdin (prompts may read the terminal) and a call from a thread other than the main one (the
    process's streams, environment and working directory are swapped for the call) get a process forked
    from a warm interpreter (tlskit_processes); ``isolated=True`` gets a new interpreter, as a shell would
    start it. TLSKIT_TEST_SUBPROCESS=1 runs every call in a new interpreter, to compare.
    """
    full_env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    if isolated or os.environ.get("TLSKIT_TEST_SUBPROCESS") == "1":
        completed = subprocess.run(
            [sys.executable, "-m", "tlskit", *args], cwd=cwd, input=input, capture_output=True, text=True,
            timeout=timeout, env=full_env, stdin=None if input is not None else subprocess.DEVNULL,
        )
        return Run(completed.returncode, completed.stdout, completed.stderr)
    if input is not None or threading.current_thread() is not threading.main_thread():
        return _run_forked(list(args), cwd, input, timeout, full_env)
    return _run_in_process(list(args), cwd, full_env)


def _run_forked(args: list[str], cwd: Path | str | None, input: str | None, timeout: float,
                env: dict[str, str]) -> Run:
    """A process of its own, forked from tlskit_processes' warm launcher."""
    from tlskit_processes import run_tlskit_process

    done = run_tlskit_process(args, env=env, cwd=cwd, input=input, timeout=timeout)
    return Run(done.returncode, done.stdout, done.stderr)


_SIGNALS_A_COMMAND_MAY_HANDLE = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGPIPE)


def _run_in_process(args: list[str], cwd: Path | str | None, env: dict[str, str]) -> Run:
    import io
    import traceback
    import warnings

    from tlskit.cli.app import register
    from tlskit.cli.entry import main
    from tlskit_processes import exit_code

    # Every command registered from the first call on: main() then builds the click command once, not
    # again each time a call registers a command this worker had not run yet.
    register()

    def stream() -> io.TextIOWrapper:
        return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace", write_through=True)

    def text(wrapper: io.TextIOWrapper) -> str:
        wrapper.flush()
        return wrapper.buffer.getvalue().decode("utf-8", errors="replace")

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_streams = sys.stdin, sys.stdout, sys.stderr, sys.argv
    saved_handlers = {number: signal.getsignal(number) for number in _SIGNALS_A_COMMAND_MAY_HANDLE}
    out, err = stream(), stream()
    returncode = 0
    os.environ.clear()
    os.environ.update(env)
    try:
        if cwd is not None:
            os.chdir(cwd)
        sys.stdin, sys.stdout, sys.stderr = io.TextIOWrapper(io.BytesIO(b""), encoding="utf-8"), out, err
        sys.argv = [sys.executable, *args]
        with warnings.catch_warnings():
            # The filters of a fresh interpreter (not pytest's), so a warning the user would see on
            # stderr is on stderr here too.
            warnings.resetwarnings()
            for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
                warnings.simplefilter("ignore", category)
            # pytest records warnings through a hook that catch_warnings leaves in place: print them instead.
            warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: err.write(
                warnings.formatwarning(message, category, filename, lineno, line))
            try:
                main(args)
            except SystemExit as exit_:
                returncode = exit_code(exit_, err)
            except Exception:  # what the interpreter would print before exiting with 1
                err.write(traceback.format_exc())
                returncode = 1
    finally:
        sys.stdin, sys.stdout, sys.stderr, sys.argv = saved_streams
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        for number, handler in saved_handlers.items():
            if handler is not None:  # None: set outside Python, and so never changed by a command
                signal.signal(number, handler)
    return Run(returncode, text(out), text(err))


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


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A 127.0.0.1 port that refuses connections while the block runs.

    A port ``free_port`` returned and closed again can be taken by another test's server before it is
    used; this one stays bound (without listening), so a connection is refused and no server can bind it.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


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


def child_pids(pid: int) -> set[int]:
    """The processes ``pid`` has forked and not yet reaped (a server's workers, a cluster's backends)."""
    listed = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return {int(child) for child in listed.split()}


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


def pytest_collection_modifyitems(items):
    """Modules marked slow first (a stable sort). `make test` runs `--dist loadfile --no-loadscope-reorder`,
    so the workers take whole modules in this order: the long ones start early instead of becoming the
    tail of the run while the other workers have nothing left to do."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def tlskit():
    return run_tlskit


@pytest.fixture
def cli_spelling():
    """Library messages spell options as the CLI does (--include-root), for tests that check the text a
    command prints while calling the library directly; without it they name the keyword (include_root)."""
    from tlskit.cli.params import flag
    from tlskit.errors import spelling_options

    with spelling_options(flag):
        yield


# Under `make mutation` (mutmut sets MUTANT_UNDER_TEST) a test must give the same answer for every mutant:
# hypothesis then replays a fixed sequence of examples instead of searching anew on each run.
if "MUTANT_UNDER_TEST" in os.environ:
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("mutation", derandomize=True, database=None)
    _hypothesis_settings.load_profile("mutation")
