"""Limits shared by any number of `tlskit serve` instances, counted in Redis (``--limits-store redis://``).

Driver: redis-py's asyncio client (``redis.asyncio``), the maintained client of the Redis project,
with hiredis parsing replies; the server's event loop never blocks on it.

Exact across instances: every decision is made inside Redis by one Lua script, which Redis runs
atomically, so two instances can never both take the last slot. Per user there are two sorted sets:

- ``tlskit:limits:USER:hour``: one member per admitted request, scored by its admission time; the
  members of the last hour are the hour's count (a rolling window, as :class:`MemoryLimiter` keeps);
- ``tlskit:limits:USER:flight``: one member per request in flight, scored by when its **lease** ends.
  Expired members do not count. An instance renews the leases of its running requests every third of
  the lease, and removes a lease when its request ends; an instance that dies (SIGKILL, power) stops
  renewing, so its slots come back within one lease at most.

Every time is Redis's own (``TIME``): instances need not agree on the clock. The requests decided in
one turn of the event loop go to Redis together, as one script call (the decisions inside it are
taken in order), with the releases and renewals that are due: one round trip for all of them.

When Redis cannot be reached (refused, or no answer within ``timeout``), requests are admitted without
limits (``fail="open"``, as Kong's ``fault_tolerant`` and Envoy's rate limit filter do) or answered 503
with Retry-After (``fail="closed"``), with one log line per 10 s; a probe every second brings the
limits back as soon as Redis answers again. A Redis that turns tlskit away while serving (its password
changed, its certificate no longer one the URL's CA issued) is the same outage, with a line that says so.
At start the same two are input to fix instead (:func:`check_redis`): they will not mend themselves.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import secrets
import ssl
import time

from tlskit.errors import option
from tlskit.server.limits import WINDOW_SECONDS, Decision, Limits, _decision, _refusal
from tlskit.server.stores import RedisUrl

log = logging.getLogger("tlskit.serve")

_ADMITTED = Decision(True)
LOG_EVERY = 10.0            # seconds between two log lines about an unreachable Redis
PROBE_EVERY = 1.0           # seconds between two attempts to reach Redis again
RETRY_AFTER = 2             # seconds, for the 503 of fail closed

# ARGV: lease ms, window ms, then operations, each naming its keys by their index in KEYS:
#   r FLIGHT ID                      release: the request ID ended
#   n FLIGHT ID                      renew: the request ID still runs
#   a FLIGHT HOUR MAXC MAXR ID       acquire: decide, and count ID when admitted
# Returns {now_ms, then per acquire: admitted (1/0), in flight before, admitted in the hour before,
# the oldest of the hour (ms, -1 for none)}. The refusal rule is limits._refusal's: a full set of
# slots first, then a spent hour.
DECIDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local out = {now}
local i = 3
while i <= #ARGV do
  local op = ARGV[i]
  if op == 'r' then
    redis.call('ZREM', KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2])
    i = i + 3
  elseif op == 'n' then
    redis.call('ZADD', KEYS[tonumber(ARGV[i + 1])], 'XX', now + lease, ARGV[i + 2])
    redis.call('PEXPIRE', KEYS[tonumber(ARGV[i + 1])], lease * 2)
    i = i + 3
  else
    local flight = KEYS[tonumber(ARGV[i + 1])]
    local hour = KEYS[tonumber(ARGV[i + 2])]
    local maxc = tonumber(ARGV[i + 3])
    local maxr = tonumber(ARGV[i + 4])
    local id = ARGV[i + 5]
    i = i + 6
    local inflight = 0
    if maxc > 0 then
      redis.call('ZREMRANGEBYSCORE', flight, '-inf', now)
      inflight = redis.call('ZCARD', flight)
    end
    local count = 0
    local oldest = -1
    if maxr > 0 then
      redis.call('ZREMRANGEBYSCORE', hour, '-inf', now - window)
      count = redis.call('ZCARD', hour)
      if count > 0 then
        oldest = tonumber(redis.call('ZRANGE', hour, 0, 0, 'WITHSCORES')[2])
      end
    end
    local admitted = 1
    if maxc > 0 and inflight >= maxc then
      admitted = 0
    elseif maxr > 0 and count >= maxr then
      admitted = 0
    end
    if admitted == 1 then
      if maxr > 0 then
        redis.call('ZADD', hour, now, id)
        redis.call('PEXPIRE', hour, window + 60000)
      end
      if maxc > 0 then
        redis.call('ZADD', flight, now + lease, id)
        redis.call('PEXPIRE', flight, lease * 2)
      end
    end
    out[#out + 1] = admitted
    out[#out + 1] = inflight
    out[#out + 1] = count
    out[#out + 1] = oldest
  end
end
return out
"""


class RedisLimiter:
    """Hourly and in-flight limits counted in Redis for every instance that shares it."""

    def __init__(self, url: RedisUrl, fail: str = "open", lease: float = 15.0, timeout: float = 1.0,
                 prefix: str = "tlskit:limits:") -> None:
        self.url = url
        self.fail = fail
        self.lease = float(lease)
        self.timeout = timeout
        self.prefix = prefix
        self._client = None
        self._script = None
        self._acquires: list[tuple[str, Limits, str, asyncio.Future]] = []
        self._releases: list[tuple[str, str]] = []
        self._scheduled = False
        self._running: dict[str, str] = {}          # lease id -> user: this instance's requests holding a slot
        self._ids = itertools.count()
        self._instance = secrets.token_hex(6)
        self._down: str | None = None               # why Redis cannot be reached, while it cannot
        self._logged_at = -math.inf
        self._tasks: set[asyncio.Task] = set()
        self._renewer: asyncio.Task | None = None
        self._prober: asyncio.Task | None = None
        self._seen_in_flight: dict[str, int] = {}
        self.stats = {"decisions": 0, "round_trips": 0, "unavailable": 0}

    # --- the Limiter interface ------------------------------------------------------------------------

    def acquire(self, user: str, limits: Limits):
        """A Decision now (no limits; Redis known to be down), or a future of the one Redis makes."""
        if not limits.max_requests and not limits.max_concurrent:
            return _ADMITTED
        if self._down is not None:
            return self._unavailable()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        lease = f"{self._instance}:{next(self._ids)}"
        self._acquires.append((user, limits, lease, future))
        self._schedule(loop)
        return future

    def release(self, user: str, decision: Decision | None = None) -> None:
        lease = decision.lease if decision is not None else None
        if lease is None or self._running.pop(lease, None) is None:
            return      # admitted without a slot (no concurrency limit, or while Redis was down)
        self._releases.append((user, lease))
        try:
            self._schedule(asyncio.get_running_loop())
        except RuntimeError:
            pass        # no loop any more (shutting down): the lease runs out by itself

    def in_flight(self, user: str) -> int | None:
        """In flight across all instances when this instance last admitted one of the user's requests."""
        return self._seen_in_flight.get(user)

    # --- batching -------------------------------------------------------------------------------------

    def _schedule(self, loop) -> None:
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        if self._renewer is None:
            self._renewer = loop.create_task(self._renew(), name="tlskit-limits-renew")

    def _flush(self) -> None:
        self._scheduled = False
        acquires, self._acquires = self._acquires, []
        releases, self._releases = self._releases, []
        if not acquires and not releases:
            return
        task = asyncio.get_running_loop().create_task(self._decide(acquires, releases, []))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            if self._running and self._down is None:
                await self._decide([], [], list(self._running.items()))

    async def _decide(self, acquires, releases, renewals) -> None:
        keys: dict[str, int] = {}

        def key(name: str) -> int:
            index = keys.get(name)
            if index is None:
                index = keys[name] = len(keys) + 1
            return index

        args: list = [int(self.lease * 1000), int(WINDOW_SECONDS * 1000)]
        for user, lease in releases:
            args += ["r", key(f"{self.prefix}{user}:flight"), lease]
        for lease, user in renewals:
            args += ["n", key(f"{self.prefix}{user}:flight"), lease]
        for user, limits, lease, _ in acquires:
            args += ["a", key(f"{self.prefix}{user}:flight"), key(f"{self.prefix}{user}:hour"),
                     limits.max_concurrent, limits.max_requests, lease]
        try:
            script = self._connect()
            self.stats["round_trips"] += 1
            reply = await asyncio.wait_for(script(keys=list(keys), args=args), self.timeout + 0.5)
        except asyncio.CancelledError:
            for *_, future in acquires:
                if not future.done():
                    future.cancel()
            raise
        except Exception as exc:  # refused, reset, timed out, NOSCRIPT that could not load, LOADING...
            self._went_down(exc)
            for *_, future in acquires:
                if not future.done():
                    future.set_result(self._unavailable())
            return
        now = reply[0] / 1000
        for index, (user, limits, lease, future) in enumerate(acquires):
            admitted, in_flight, count, oldest_ms = reply[1 + 4 * index: 5 + 4 * index]
            oldest = oldest_ms / 1000 if oldest_ms >= 0 else None
            self.stats["decisions"] += 1
            if admitted:
                if limits.max_concurrent:
                    self._running[lease] = user
                    self._seen_in_flight[user] = in_flight + 1
                decision = _decision(True, 0, "", limits, count + 1, oldest if oldest is not None else now, now)
                decision.lease = lease if limits.max_concurrent else None
            else:
                decision = _refusal(limits, in_flight, count, oldest, now) or Decision(False, 1, "limit")
            if future.done():         # the request went away meanwhile: give its slot back
                if admitted and limits.max_concurrent:
                    self.release(user, decision)
            else:
                future.set_result(decision)

    # --- Redis, and when it is not there ------------------------------------------------------------

    def _connect(self):
        if self._script is None:
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            # One retry at once, on a new connection: a pooled one that a Redis restart (or a CLIENT KILL)
            # left dead is not an outage, and the error after it is the one to log (a refused password,
            # a certificate not trusted). redis-py's own backoff would outlast the timeout.
            self._client = aioredis.Redis.from_url(
                self.url.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout,
                health_check_interval=0, retry_on_timeout=False, retry=Retry(NoBackoff(), 1), max_connections=64)
            self._script = self._client.register_script(DECIDE)
        return self._script

    def _unavailable(self) -> Decision:
        self.stats["unavailable"] += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY:
            self._logged_at = now
            action = (f"admitting requests without limits ({option('limits_fail')} open)" if self.fail == "open"
                      else f"answering 503 to limited users ({option('limits_fail')} closed)")
            log.warning("limits store %s unreachable (%s): %s", self.url, self._down, action)
        if self.fail == "open":
            return _ADMITTED
        return Decision(False, RETRY_AFTER, "limits store unavailable", status=503)

    def _went_down(self, exc: BaseException) -> None:
        if self._down is None:
            self._down = describe(exc)
            if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
                self._down = f"no answer within {self.timeout:g} s"
            self._logged_at = -math.inf         # say so now, whatever was said before
            self._running.clear()               # those slots run out by themselves
            if self._prober is None or self._prober.done():
                self._prober = asyncio.get_running_loop().create_task(self._probe(), name="tlskit-limits-probe")

    async def _probe(self) -> None:
        while self._down is not None:
            await asyncio.sleep(PROBE_EVERY)
            try:
                self._connect()
                await asyncio.wait_for(self._client.ping(), self.timeout + 0.5)
            except asyncio.CancelledError:
                raise
            except Exception:
                continue
            log.warning("limits store %s reachable again: limits apply", self.url)
            self._down = None

    async def aclose(self) -> None:
        for task in (self._renewer, self._prober, *self._tasks):
            if task is not None:
                task.cancel()
        if self._client is not None:
            await self._client.aclose()


def _untrusted(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind a redis-py connection error, if that is what it is."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def describe(exc: BaseException) -> str:
    """Why Redis cannot be used, in a few words for the log (redis-py's texts never quote the password)."""
    import redis

    untrusted = _untrusted(exc)
    if untrusted is not None:
        return f"its certificate is not trusted: {untrusted.verify_message or untrusted.reason}"
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, redis.AuthenticationError) or text.startswith(("WRONGPASS", "NOAUTH")):
        return f"it refused the password in {option('limits_store')}: {text}"
    return text


def check_redis(url: RedisUrl, timeout: float = 2.0) -> None:
    """At start: a wrong password, a bad database number or a certificate the URL does not trust is
    input to fix (InputError). An unreachable server is not: the limiter fails open or closed, as
    configured, until it answers."""
    import redis

    from tlskit.errors import InputError

    client = redis.Redis.from_url(url.url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        client.ping()
    except (redis.AuthenticationError, redis.ResponseError) as exc:
        raise InputError(f"the limits store {url} refused tlskit", " ".join(str(exc).split()),
                         f"check the password and database number in {option('limits_store')}") from None
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        untrusted = _untrusted(exc)
        if untrusted is not None:
            raise InputError(f"the limits store {url} is not the server tlskit trusts",
                             f"its certificate: {untrusted.verify_message or untrusted.reason}",
                             "name the CA that issued Redis's certificate with ?ssl_ca_certs=/path/ca.pem "
                             "(without it rediss:// trusts the system's store)") from None
    finally:
        client.close()
