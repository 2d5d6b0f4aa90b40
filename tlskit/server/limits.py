"""Per-user limits: requests per rolling hour and requests in flight.

:class:`MemoryLimiter` keeps its counters in the process. ``acquire`` checks and records in one
synchronous step with no ``await`` inside, so on one event loop two requests can never both see the
last free slot: with a limit of N, exactly N are let through, never N+1. With ``--workers`` > 1 each
worker counts for itself; counters shared between processes or machines (Redis: a sorted set per
user for the window, INCR/DECR for in-flight, in one Lua script) fit the same :class:`Limiter` shape.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

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

    def headers(self) -> list[tuple[bytes, bytes]]:
        """RateLimit-* fields (draft-ietf-httpapi-ratelimit-headers) and Retry-After when refused."""
        out: list[tuple[bytes, bytes]] = []
        if self.limit:
            out += [
                (b"ratelimit-limit", str(self.limit).encode()),
                (b"ratelimit-remaining", str(self.remaining).encode()),
                (b"ratelimit-reset", str(self.reset).encode()),
                (b"ratelimit-policy", f"{self.limit};w={int(WINDOW_SECONDS)}".encode()),
            ]
        if not self.allowed:
            out.append((b"retry-after", str(max(1, self.retry_after)).encode()))
        return out


_ADMITTED = Decision(True)


class Limiter(Protocol):
    def acquire(self, user: str, limits: Limits) -> Decision: ...
    def release(self, user: str) -> None: ...


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
        """Admit (and count) or refuse one request. ``limits`` is any object with ``max_requests`` and
        ``max_concurrent`` (the gate passes its own ``UserLimits``)."""
        if not limits.max_requests and not limits.max_concurrent:
            return _ADMITTED  # nothing to count; release() of an uncounted user is a no-op
        with self._lock:
            return self._acquire(user, limits)

    def _acquire(self, user: str, limits: Limits) -> Decision:
        now = self._clock()
        window = self._admitted.get(user)
        if limits.max_requests:
            if window is None:
                window = self._admitted[user] = deque()
            horizon = now - WINDOW_SECONDS
            while window and window[0] <= horizon:
                window.popleft()
        in_flight = self._in_flight.get(user, 0)
        if limits.max_concurrent and in_flight >= limits.max_concurrent:
            # A slot frees when a request finishes; one second is an honest hint.
            return self._decision(False, 1, "concurrent requests", limits, window, now)
        if limits.max_requests and len(window) >= limits.max_requests:
            wait = math.ceil(window[0] + WINDOW_SECONDS - now)
            return self._decision(False, wait, "requests per hour", limits, window, now)
        if limits.max_requests:
            window.append(now)
        self._in_flight[user] = in_flight + 1
        return self._decision(True, 0, "", limits, window, now)

    def release(self, user: str) -> None:
        """Call exactly once for every admitted request, when its response is finished (or failed)."""
        with self._lock:
            left = self._in_flight.get(user, 0) - 1
            if left > 0:
                self._in_flight[user] = left
            else:
                self._in_flight.pop(user, None)

    def in_flight(self, user: str) -> int:
        return self._in_flight.get(user, 0)

    @staticmethod
    def _decision(allowed: bool, retry_after: int, reason: str, limits: Limits,
                  window: deque[float] | None, now: float) -> Decision:
        if not limits.max_requests or window is None:
            return Decision(allowed, retry_after, reason)
        reset = math.ceil(window[0] + WINDOW_SECONDS - now) if window else 0
        return Decision(allowed, retry_after, reason, limit=limits.max_requests,
                        remaining=max(0, limits.max_requests - len(window)), reset=reset)
