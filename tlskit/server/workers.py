"""The master process of ``--workers N``: forks the workers, relays signals to them, and watches them.

A worker that exits by itself has failed, and has said why on stderr: the master stops the others and
fails with the worker's exit code, since a server with a worker missing would pass for a running one
while refusing part of its connections. A worker killed by a signal the master did not send (the
out-of-memory killer, a stray ``kill``) is replaced, as nginx's master replaces one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable

from tlskit.errors import EXIT_INPUT, EXIT_NETWORK, InputError, NetworkError, SystemFailure, TlskitError

log = logging.getLogger("tlskit.serve")

# Stop every worker; the master handles them too, so they are blocked around each fork with the held
# ones (a signal arriving before the child has reset its handlers then waits for the child's own
# dispositions instead of running the master's handlers in the child).
_STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})
# A worker that dies this soon after its start is not replaced at once: a crash loop stays a slow one.
_RESPAWN_PAUSE = 1.0


def supervise(count: int, run_worker: Callable[[], None], held: frozenset[int]) -> None:
    """Fork ``count`` workers that each call ``run_worker`` and watch them until they all exit.

    ``held`` are the signals a worker unblocks itself once its event loop handles them; they are
    relayed to every worker. SIGINT and SIGTERM stop every worker. Raises a :class:`TlskitError` with the
    failed worker's exit code when one exits by itself."""
    workers: dict[int, float] = {}          # pid -> when it started
    stopping = reloaded = False

    def stop_all(_sig=None, _frame=None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def relay(sig, _frame) -> None:
        nonlocal reloaded
        reloaded |= sig == signal.SIGHUP
        for pid in list(workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    for _ in range(count):
        pid = _spawn(run_worker, held)
        workers[pid] = time.monotonic()
    for sig in _STOP_SIGNALS:
        signal.signal(sig, stop_all)
    for sig in held:
        signal.signal(sig, relay)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
    failed: tuple[int, int] | None = None
    while workers:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        started = workers.pop(pid, None)
        if started is None or stopping:
            continue
        code = os.waitstatus_to_exitcode(status)
        if code >= 0:
            failed = (pid, code)
            log.error("worker %d exited with code %d; stopping the other workers", pid, code)
            stop_all()
            continue
        log.warning("worker %d was killed by %s; starting another", pid, signal.Signals(-code).name)
        if time.monotonic() - started < _RESPAWN_PAUSE:
            time.sleep(_RESPAWN_PAUSE)
        if not stopping:
            workers[_spawn(run_worker, held, reload=reloaded)] = time.monotonic()
    if failed is not None:
        raise _worker_failed(*failed)


def _spawn(run_worker: Callable[[], None], held: frozenset[int], reload: bool = False) -> int:
    """Fork one worker. With ``reload`` it reads the settings again as soon as it serves, as its siblings
    did on a SIGHUP: the master holds the settings of its own start, which a reload may have changed."""
    handled = held | _STOP_SIGNALS
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, handled)
    pid = os.fork()
    if pid != 0:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        return pid
    code = 1
    try:
        for sig in handled:
            signal.signal(sig, signal.SIG_DFL)
        # SIGINT and SIGTERM end the worker from here on; the held ones wait for its event loop.
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        if reload:
            os.kill(os.getpid(), signal.SIGHUP)         # pending until the worker's event loop handles it
        code = _run(run_worker)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _run(run_worker: Callable[[], None]) -> int:
    """One worker's life; its exit code. Its error is one line on stderr, as the command's would be."""
    try:
        run_worker()
        return 0
    except TlskitError as exc:
        log.error("worker %d: error: %s", os.getpid(), exc.message)
        return exc.exit_code
    except Exception:
        log.exception("worker %d failed", os.getpid())
        return 1


def _worker_failed(pid: int, code: int) -> TlskitError:
    kind = {EXIT_INPUT: InputError, EXIT_NETWORK: NetworkError}.get(code, SystemFailure)
    return kind(f"worker {pid} of tlskit serve exited with code {code}", "its error is above",
                "fix what it names, then start tlskit serve again")
