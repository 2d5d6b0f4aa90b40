"""Password guessing cannot starve real users: per-address slots for slow hashes and a failure budget.

A password check that is not answered from the verified-credential cache costs a slow hash (argon2 needs
64 MiB and tens of milliseconds). Two rules keep one client address from turning that into a denial of
service for everyone else:

- **slots**: an address may have ``per_address`` slow checks running and ``queued`` more waiting; a
  request beyond that is answered 429 with ``Retry-After: 1`` at once. The checks themselves run on a
  fixed number of threads (``--hash-workers``), so memory stays bounded however many guess.
- **a failure budget**, fail2ban-like: ``max_failures`` wrong passwords from one address within
  ``window`` seconds close that address to password checks for ``ban`` seconds (429 + Retry-After).

Neither rule ever slows a token or a user+password pair the server has already verified: those are
answered before any slot or budget is asked (see :mod:`.auth`). Addresses are counted as the listener
counts them (:func:`tlskit.server.trusted_proxy.address_key`: an IPv6 client by its /64).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass

MAX_TRACKED = 100_000       # addresses remembered at most; the quietest are forgotten first


@dataclass(frozen=True)
class ThrottleSettings:
    max_failures: int = 20      # 0: no failure budget
    window: float = 60.0
    ban: float = 60.0
    per_address: int = 2        # slow checks running for one address
    queued: int = 8             # slow checks of one address waiting for a slot


class _Slots:
    __slots__ = ("running", "waiting")

    def __init__(self) -> None:
        self.running = 0
        self.waiting: deque[asyncio.Future] = deque()


class LoginThrottle:
    def __init__(self, settings: ThrottleSettings = ThrottleSettings(), clock=time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._banned: dict[str, float] = {}
        self._slots: dict[str, _Slots] = {}

    # --- the failure budget -------------------------------------------------------------------------

    def retry_after(self, key: str) -> int:
        """Seconds until ``key`` may try a password again; 0 when it may now."""
        until = self._banned.get(key)
        if until is None:
            return 0
        left = until - self._clock()
        if left <= 0:
            del self._banned[key]
            return 0
        return max(1, math.ceil(left))

    def failed(self, key: str) -> None:
        """Count one wrong password from ``key``; ban it when its budget is spent."""
        limit = self.settings.max_failures
        if not limit:
            return
        now = self._clock()
        recent = self._failures.get(key)
        if recent is None:
            if len(self._failures) >= MAX_TRACKED:
                self._forget_quiet(now)
            recent = self._failures[key] = deque(maxlen=limit)
        recent.append(now)
        if len(recent) >= limit and now - recent[0] <= self.settings.window:
            self._banned[key] = now + self.settings.ban
            recent.clear()

    def _forget_quiet(self, now: float) -> None:
        horizon = now - self.settings.window
        for key in [k for k, times in self._failures.items() if not times or times[-1] < horizon]:
            del self._failures[key]
        if len(self._failures) >= MAX_TRACKED:
            self._failures.clear()

    # --- slots for slow checks ----------------------------------------------------------------------

    async def acquire(self, key: str) -> bool:
        """Wait for a slow-check slot for ``key``; False (answer 429) when its queue is full."""
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = _Slots()
        if slots.running < self.settings.per_address:
            slots.running += 1
            return True
        if len(slots.waiting) >= self.settings.queued:
            return False
        waiter = asyncio.get_running_loop().create_future()
        slots.waiting.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(key)       # the slot was handed over just as we were cancelled
            elif waiter in slots.waiting:   # a release in the same tick may have passed it by already
                slots.waiting.remove(waiter)
            raise
        return True

    def release(self, key: str) -> None:
        slots = self._slots.get(key)
        if slots is None:
            return
        while slots.waiting:
            waiter = slots.waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)     # the slot passes to the next in line
                return
        slots.running -= 1
        if slots.running <= 0:
            del self._slots[key]
