"""`python -m tlskit ...` as a background process for tests, forked from a warm interpreter.

A cold `python -m tlskit serve` spends about 0.35 s of CPU on interpreter start-up and imports before it
serves, and the suite starts a server a couple of hundred times. So each pytest worker starts one
*launcher* the first time it needs a process: a fresh interpreter (not a fork of pytest, whose threads,
handlers and captured streams a child must not inherit) that imports tlskit's CLI and server modules once,
then forks one child per request. The child is what `python -m tlskit ARGS` would be: the same entry point
(``tlskit.cli.entry.main``), arguments, environment, working directory and standard streams (passed as file
descriptors), the signal dispositions of a fresh interpreter, no other open descriptor, and the exit code
the interpreter would give. What differs is what a fork cannot give: the pre-imported modules.

The launcher reports each child's exit status on a socket of its own, so the test side offers the part of
``subprocess.Popen`` that tests use (pid, args, poll, wait, send_signal, terminate, kill, returncode).
TLSKIT_TEST_SUBPROCESS=1 starts every process cold instead, as a user's shell would, to compare.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import threading
from pathlib import Path

# Imported once in the launcher; a child imports anything else it needs itself.
WARM_MODULES = ("tlskit.cli.entry", "tlskit.cli.app", "tlskit.cli.params", "tlskit.server.run", "tlskit.server.app",
                "tlskit.server.engine", "tlskit.server.config", "tlskit.server.users", "tlskit.server.live",
                "tlskit.server.settings", "tlskit.server.dataset", "tlskit.server.reload",
                "tlskit.server.users_credentials", "tlskit.issue", "cryptography.x509",
                "cryptography.hazmat.primitives.asymmetric.ec", "cryptography.hazmat.primitives.serialization",
                "uvloop", "tomllib", "zipfile", "importlib.resources")
_MAX_REQUEST = 1 << 20
_MAIN_MODULE_PATH = ""


class TlskitProcess:
    """A forked `tlskit` child; its exit status arrives on ``status`` once the launcher has reaped it."""

    def __init__(self, pid: int, args: list[str], status: socket.socket):
        self.pid, self.args, self._status = pid, args, status
        self.returncode: int | None = None
        self.stdin = self.stdout = self.stderr = None

    def _collect(self, timeout: float | None) -> bool:
        if self.returncode is not None:
            return True
        readable, _, _ = select.select([self._status], [], [], timeout)
        if not readable:
            return False
        text = self._status.recv(64)
        self._status.close()
        # An empty answer: the launcher died before reaping the child; report it as the interpreter would a kill.
        self.returncode = int(text) if text else -9
        return True

    def poll(self) -> int | None:
        self._collect(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._collect(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def send_signal(self, signal_number: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, signal_number)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        import signal

        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        import signal

        self.send_signal(signal.SIGKILL)


class _Launcher:
    def __init__(self):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.process = subprocess.Popen([sys.executable, __file__, str(theirs.fileno())], pass_fds=[theirs.fileno()],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=dict(os.environ))
        theirs.close()
        self.control = ours
        self.lock = threading.Lock()

    def start(self, args: list[str], env: dict[str, str], cwd: str, streams: list[int],
              code: str | None) -> TlskitProcess:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        request = json.dumps({"args": args, "env": env, "cwd": cwd, "code": code}).encode()
        with self.lock:
            socket.send_fds(self.control, [request], [*streams, theirs.fileno()])
            answer = self.control.recv(_MAX_REQUEST)
        theirs.close()
        if not answer:
            raise RuntimeError("the tlskit launcher exited")
        command = [sys.executable, "-m", "tlskit"] if code is None else [sys.executable, "-c", code]
        return TlskitProcess(json.loads(answer)["pid"], [*command, *args], ours)


_launcher: _Launcher | None = None
_launcher_lock = threading.Lock()


def start_tlskit(args: list[str], *, stdout, stderr, env: dict[str, str] | None = None,
                 cwd: Path | str | None = None, stdin=subprocess.DEVNULL, code: str | None = None):
    """Start `python -m tlskit ARGS` in the background (with ``code``: `python -c CODE ARGS`);
    ``stdin``, ``stdout`` and ``stderr`` are open files or DEVNULL."""
    global _launcher
    env = dict(os.environ if env is None else env)
    if os.environ.get("TLSKIT_TEST_SUBPROCESS") == "1":
        command = [sys.executable, "-m", "tlskit"] if code is None else [sys.executable, "-c", code]
        return subprocess.Popen([*command, *args], stdout=stdout, stderr=stderr, stdin=stdin, env=env, cwd=cwd)
    opened = []

    def descriptor(stream) -> int:
        if stream == subprocess.DEVNULL:
            opened.append(os.open(os.devnull, os.O_RDWR))
            return opened[-1]
        return stream.fileno()

    try:
        streams = [descriptor(stdin), descriptor(stdout), descriptor(stderr)]
        with _launcher_lock:
            if _launcher is None or _launcher.process.poll() is not None:
                _launcher = _Launcher()
            launcher = _launcher
        return launcher.start(list(args), env, str(cwd or os.getcwd()), streams, code)
    finally:
        for fd in opened:
            os.close(fd)


def run_tlskit_process(args: list[str], *, env: dict[str, str] | None = None, cwd: Path | str | None = None,
                       input: str | None = None, timeout: float = 120,
                       code: str | None = None) -> subprocess.CompletedProcess:
    """``start_tlskit`` and wait for the end: stdout and stderr as ``subprocess.run(text=True)`` gives them
    (universal newlines); killed and TimeoutExpired after ``timeout`` seconds."""
    import tempfile

    def text(file) -> str:
        file.seek(0)
        return file.read().decode().replace("\r\n", "\n").replace("\r", "\n")

    with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        stdin.write((input or "").encode())
        stdin.seek(0)
        process = start_tlskit(args, stdin=stdin if input is not None else subprocess.DEVNULL, stdout=out,
                               stderr=err, env=env, cwd=cwd, code=code)
        try:
            returncode = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        return subprocess.CompletedProcess(process.args, returncode, text(out), text(err))


def exit_code(exit_: SystemExit, stderr) -> int:
    """The status an interpreter exits with for an uncaught SystemExit (a text code goes to ``stderr``)."""
    if exit_.code is None or isinstance(exit_.code, int):
        return exit_.code or 0
    stderr.write(f"{exit_.code}\n")
    return 1


# --- the launcher process ---------------------------------------------------------------------------


def _run_child(request: dict, streams: list[int]) -> None:
    """Become `python -m tlskit ARGS`; never returns."""
    code = 1
    try:
        for target, fd in enumerate(streams):
            os.dup2(fd, target)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        os.chdir(request["cwd"])
        sys.path[0] = request["cwd"]                # where `python -m` puts the working directory
        os.environ.clear()
        os.environ.update(request["env"])
        try:
            if request["code"] is None:
                sys.argv = [_MAIN_MODULE_PATH, *request["args"]]   # what `python -m tlskit` sets
                from tlskit.cli.entry import main

                main(request["args"])
            else:
                sys.argv = ["-c", *request["args"]]                # what `python -c` sets
                exec(compile(request["code"], "<string>", "exec"), {"__name__": "__main__"})
            code = 0
        except SystemExit as exit_:
            code = exit_code(exit_, sys.stderr)
        except KeyboardInterrupt:
            import signal

            # A fresh interpreter dies of the SIGINT it did not handle.
            sys.stderr.flush()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        import atexit

        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


def _build_cli_once() -> None:
    """Build the click command of every tlskit command (a cold process builds the one it runs, ~80 ms for
    `serve`), then freeze what the launcher holds so a child's garbage collections skip it."""
    import gc

    from tlskit.cli.app import click_command, register

    register()
    click_command()
    gc.collect()
    gc.freeze()


def _serve_requests(control: socket.socket) -> None:
    import importlib.util
    import selectors

    global _MAIN_MODULE_PATH
    _MAIN_MODULE_PATH = importlib.util.find_spec("tlskit.__main__").origin
    for name in WARM_MODULES:
        __import__(name)
    _build_cli_once()
    # A fork copies only the calling thread: with another one running, a child could inherit a held lock.
    assert threading.active_count() == 1, threading.enumerate()
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ, None)
    while True:
        for key, _ in selector.select():
            if key.data is None:
                message, fds, _, _ = socket.recv_fds(control, _MAX_REQUEST, 4)
                if not message:
                    return                          # the test process is gone
                *streams, status = fds
                pid = os.fork()
                if pid == 0:
                    _run_child(json.loads(message), streams)
                for fd in streams:
                    os.close(fd)
                selector.register(os.pidfd_open(pid), selectors.EVENT_READ, (pid, status))
                control.send(json.dumps({"pid": pid}).encode())
            else:
                pid, status = key.data
                selector.unregister(key.fd)
                os.close(key.fd)
                _, wait_status = os.waitpid(pid, 0)
                with socket.socket(fileno=status) as answer:
                    try:
                        answer.send(str(os.waitstatus_to_exitcode(wait_status)).encode())
                    except OSError:
                        pass                        # nobody waits for this child any more


if __name__ == "__main__":
    _serve_requests(socket.socket(fileno=int(sys.argv[1])))
