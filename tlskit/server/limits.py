"""Per-user limits: requests per rolling hour and requests in flight.

:class:`MemoryLimiter` keeps its counters in the process. ``acquire`` checks and records in one
synchronous step with no ``await`` inside, so on one event loop two requests can never both see the
last free slot: with a limit of N, exactly N are let through, never N+1. With ``--workers`` > 1,
:class:`SharedLimiter` keeps the same counters in SQLite for all workers (and for several instances
on one machine, ``--limits-store sqlite:PATH``). Between machines,
:class:`tlskit.server.limits_redis.RedisLimiter` keeps them in Redis; its ``acquire`` returns an
awaitable (the gate awaits it). All apply one rule, :func:`_refusal` (Redis runs a copy of it in Lua,
checked against this one by the tests). :func:`open_limiter` opens the one ``--limits-store`` names.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tlskit.errors import InputError, option
from tlskit.server.stores import LimitsStore

WINDOW_SECONDS = 3600.0


@dataclass(frozen=True)
class Limits:
    """The limits that apply to one user; 0 means unlimited."""

    max_requests: int = 0
    max_concurrent: int = 0

    @property
    def unlimited(self) -> bool:
        return not self.max_requests and not self.max_concurrent

    @classmethod
    def resolve(cls, max_requests: int | None, max_concurrent: int | None, defaults: Limits) -> Limits:
        """A user's own settings over the server's defaults: None means "use the default", 0 unlimited."""
        return cls(defaults.max_requests if max_requests is None else max_requests,
                   defaults.max_concurrent if max_concurrent is None else max_concurrent)


@dataclass
class Decision:
    allowed: bool
    retry_after: int = 0          # seconds, for Retry-After when refused
    reason: str = ""              # "requests per hour" or "concurrent requests"
    limit: int = 0                # the hourly limit, for the RateLimit-* headers (0: none)
    remaining: int = 0
    reset: int = 0                # seconds until the oldest counted request leaves the window
    status: int = 429             # 503: the limits store cannot decide and the server fails closed
    lease: str | None = None      # the in-flight slot this admission holds in a shared store

    def headers(self) -> list[tuple[bytes, bytes]]:
        """RateLimit-* fields (draft-ietf-httpapi-ratelimit-headers) and Retry-After when refused."""
        out: list[tuple[bytes, bytes]] = []
        if self.limit:
            out.extend([
                (b"ratelimit-limit", str(self.limit).encode()),
                (b"ratelimit-remaining", str(self.remaining).encode()),
                (b"ratelimit-reset", str(self.reset).encode()),
                (b"ratelimit-policy", f"{self.limit};w={int(WINDOW_SECONDS)}".encode()),
            ])
        if not self.allowed:
            out.append((b"retry-after", str(max(1, self.retry_after)).encode()))
        return out


_ADMITTED = Decision(True)


def _decision(allowed: bool, retry_after: int, reason: str, limits: Limits, admitted: int,
              oldest: float | None, now: float) -> Decision:
    """A decision with the RateLimit-* figures of the hour's window (``admitted`` requests, the
    ``oldest`` at that time) when the user has an hourly limit."""
    if not limits.max_requests:
        return Decision(allowed, retry_after, reason)
    reset = math.ceil(oldest + WINDOW_SECONDS - now) if oldest is not None else 0
    return Decision(allowed, retry_after, reason, limit=limits.max_requests,
                    remaining=max(0, limits.max_requests - admitted), reset=reset)


def _refusal(limits: Limits, in_flight: int, admitted: int, oldest: float | None, now: float) -> Decision | None:
    """The rule both limiters apply: a full set of slots first, then a spent hour; None admits."""
    if limits.max_concurrent and in_flight >= limits.max_concurrent:
        # A slot frees when a request finishes; one second is an honest hint.
        return _decision(False, 1, "concurrent requests", limits, admitted, oldest, now)
    if limits.max_requests and admitted >= limits.max_requests:
        wait = math.ceil(oldest + WINDOW_SECONDS - now)
        return _decision(False, wait, "requests per hour", limits, admitted, oldest, now)
    return None


class Limiter(Protocol):
    """``acquire`` returns the Decision, or an awaitable of it (a networked store); ``release`` is called
    once per admitted request, with that request's Decision, and never waits."""

    def acquire(self, user: str, limits: Limits) -> Decision | Awaitable[Decision]: ...
    def release(self, user: str, decision: Decision | None = None) -> None: ...


def open_limiter(store: LimitsStore | None, state_dir: Path, workers: int = 1, fail: str = "open",
                 lease: float = 15.0):
    """The limiter ``--limits-store`` names; by default memory for one worker and, for ``--workers N``,
    an SQLite file under the state dir (every worker counts in it, so limits hold for the server)."""
    kind = _kind(store, workers)
    if kind == "memory":
        return MemoryLimiter()
    if kind == "sqlite":
        return _open_shared(store, state_dir)
    from tlskit.server.limits_redis import RedisLimiter

    return RedisLimiter(store.redis, fail=fail, lease=lease)


def check_limits_store(store: LimitsStore | None, state_dir: Path, workers: int = 1) -> None:
    """Before the server listens: refuse a limits store that will never work (a wrong Redis password, an
    SQLite path nobody can write), so the error is the command's and not a worker's. An SQLite file is
    made here, once, and not by every worker at the same moment."""
    kind = _kind(store, workers)
    if kind == "sqlite":
        _open_shared(store, state_dir).close()
    elif kind == "redis":
        from tlskit.server.limits_redis import check_redis

        check_redis(store.redis)


def _kind(store: LimitsStore | None, workers: int) -> str:
    return store.kind if store is not None else ("sqlite" if workers > 1 else "memory")


def _open_shared(store: LimitsStore | None, state_dir: Path) -> SharedLimiter:
    import sqlite3

    path = store.path if store is not None else state_dir / "limits.sqlite"
    try:
        return SharedLimiter(path)
    except sqlite3.Error as exc:
        raise InputError(f"cannot open the limits store {path}", str(exc),
                         f"give {option('limits_store')} sqlite:PATH in a directory this user can write") from None


class MemoryLimiter:
    """Rolling-hour and in-flight counters for one process.

    Only admitted requests are counted: a refused request neither uses the hour's budget nor a slot.
    """

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._admitted: dict[str, deque[float]] = {}
        self._in_flight: dict[str, int] = {}
        # The event loop never interleaves inside acquire(); the lock is for callers on threads.
        self._lock = threading.Lock()

    def acquire(self, user: str, limits: Limits) -> Decision:
        """Admit (and count) or refuse one request."""
        if not limits.max_requests and not limits.max_concurrent:
            return _ADMITTED  # nothing to count; release() of an uncounted user is a no-op
        with self._lock:
            return self._acquire(user, limits)

    def _acquire(self, user: str, limits: Limits) -> Decision:
        now = self._clock()
        window: deque[float] | tuple[()] = ()
        if limits.max_requests:
            window = self._admitted.get(user)
            if window is None:
                window = self._admitted[user] = deque()
            horizon = now - WINDOW_SECONDS
            while window and window[0] <= horizon:
                window.popleft()
        in_flight = self._in_flight.get(user, 0)
        refusal = _refusal(limits, in_flight, len(window), window[0] if window else None, now)
        if refusal is not None:
            return refusal
        if limits.max_requests:
            window.append(now)
        self._in_flight[user] = in_flight + 1
        return _decision(True, 0, "", limits, len(window), window[0] if window else None, now)

    def release(self, user: str, decision: Decision | None = None) -> None:
        """Call exactly once for every admitted request, when its response is finished (or failed)."""
        with self._lock:
            left = self._in_flight.get(user, 0) - 1
            if left > 0:
                self._in_flight[user] = left
            else:
                self._in_flight.pop(user, None)

    def in_flight(self, user: str) -> int:
        return self._in_flight.get(user, 0)


def _use_wal(db, deadline: float) -> None:
    """Switch the file to WAL, which another process may be doing at the same moment (the masters of
    instances sharing ``sqlite:PATH`` started together). SQLite answers "database is locked" at once,
    without waiting out its busy timeout, to a switch that overlaps another one; so wait here."""
    import sqlite3

    delay = 0.005
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")  # pragma: no mutate
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


class SharedLimiter:
    """The same counters in a small SQLite file, shared by every worker process of ``--workers N``.

    Each decision is one ``BEGIN IMMEDIATE`` transaction, which SQLite serializes across processes, so
    the N-never-N+1 rule holds for the server as a whole. Admissions carry a wall-clock time, so the
    hour's budget also survives a restart. In-flight requests are rows keyed by worker pid: a worker
    that died leaves rows behind, and the next worker to start clears the rows of dead pids.
    Costs a transaction (tens of microseconds, no fsync) for limited users only; unlimited users skip it.

    The SQL text is kept out of mutation testing (``# pragma: no mutate``): SQLite reads keywords and
    names in any case, so the upper- and lower-cased copies mutmut makes of it cannot behave differently.
    """

    def __init__(self, path, clock=time.time) -> None:
        import os
        import sqlite3

        self._clock = clock
        self._pid = os.getpid()
        self._db = sqlite3.connect(str(path), isolation_level=None, timeout=10, check_same_thread=False)
        self._lock = threading.Lock()
        self._mine: dict[str, int] = {}  # this worker's admitted, unreleased requests: release() skips the rest
        _use_wal(self._db, deadline=time.monotonic() + 10)
        self._db.execute("PRAGMA synchronous=OFF")  # pragma: no mutate
        self._db.executescript(
            "CREATE TABLE IF NOT EXISTS admitted (user TEXT NOT NULL, at REAL NOT NULL);"  # pragma: no mutate
            "CREATE INDEX IF NOT EXISTS admitted_user ON admitted (user, at);"  # pragma: no mutate
            "CREATE TABLE IF NOT EXISTS in_flight (user TEXT NOT NULL, pid INTEGER NOT NULL, n INTEGER NOT NULL,"  # pragma: no mutate
            " PRIMARY KEY (user, pid));",  # pragma: no mutate
        )
        self._forget_dead_workers()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _forget_dead_workers(self) -> None:
        from tlskit.files import process_alive

        with self._lock:
            rows = self._db.execute("SELECT DISTINCT pid FROM in_flight")  # pragma: no mutate
            for pid in [row[0] for row in rows]:
                if not process_alive(pid):
                    self._db.execute("DELETE FROM in_flight WHERE pid = ?",  # pragma: no mutate
                                     (pid,))

    def acquire(self, user: str, limits: Limits) -> Decision:
        if not limits.max_requests and not limits.max_concurrent:
            return _ADMITTED
        with self._lock:
            db = self._db
            now = self._clock()
            db.execute("BEGIN IMMEDIATE")  # pragma: no mutate
            try:
                decision = self._decide(db, user, limits, now)
                db.execute("COMMIT")  # pragma: no mutate
            except BaseException:
                db.execute("ROLLBACK")  # pragma: no mutate
                raise
            return decision

    def _decide(self, db, user: str, limits: Limits, now: float) -> Decision:
        count, oldest = 0, None
        if limits.max_requests:
            db.execute("DELETE FROM admitted WHERE user = ? AND at <= ?",  # pragma: no mutate
                       (user, now - WINDOW_SECONDS))
            count, oldest = db.execute("SELECT COUNT(*), MIN(at) FROM admitted WHERE user = ?",  # pragma: no mutate
                                       (user,)).fetchone()
        in_flight = self._count_in_flight(db, user)
        refusal = _refusal(limits, in_flight, count, oldest, now)
        if refusal is not None:
            return refusal
        if limits.max_requests:
            db.execute("INSERT INTO admitted (user, at) VALUES (?, ?)",  # pragma: no mutate
                       (user, now))
            count, oldest = count + 1, now if oldest is None else oldest
        db.execute("INSERT INTO in_flight (user, pid, n) VALUES (?, ?, 1) "  # pragma: no mutate
                   "ON CONFLICT (user, pid) DO UPDATE SET n = n + 1",  # pragma: no mutate
                   (user, self._pid))
        self._mine[user] = self._mine.get(user, 0) + 1
        return _decision(True, 0, "", limits, count, oldest, now)

    def release(self, user: str, decision: Decision | None = None) -> None:
        with self._lock:
            left = self._mine.get(user, 0) - 1
            if left < 0:
                return  # admitted without counting (an unlimited user)
            if left:
                self._mine[user] = left
            else:
                del self._mine[user]
            # One statement, one transaction; a row left at 0 is harmless and reused by the next acquire.
            self._db.execute("UPDATE in_flight SET n = n - 1 WHERE user = ? AND pid = ? AND n > 0",  # pragma: no mutate
                             (user, self._pid))

    def in_flight(self, user: str) -> int:
        with self._lock:
            return self._count_in_flight(self._db, user)

    def _count_in_flight(self, db, user: str) -> int:
        return db.execute("SELECT COALESCE(SUM(n), 0) FROM in_flight WHERE user = ?",  # pragma: no mutate
                          (user,)).fetchone()[0]
