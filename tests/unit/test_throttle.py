"""Login throttling: per-address slots for slow hashes and a failure budget, on a clock the test moves."""

from __future__ import annotations

import asyncio

import pytest

from tlskit.server.throttle import MAX_TRACKED, LoginThrottle, ThrottleSettings


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock, **settings) -> LoginThrottle:
    return LoginThrottle(ThrottleSettings(**settings), clock=clock)


def test_the_defaults_are_the_documented_ones():
    # README: 2 slow checks running and 8 queued per address; 20 wrong passwords a minute, then 60 s of 429.
    assert ThrottleSettings() == ThrottleSettings(max_failures=20, window=60.0, ban=60.0, per_address=2, queued=8)
    assert LoginThrottle().settings == ThrottleSettings()


# ---- the failure budget -------------------------------------------------------------------------

def test_the_budget_bans_the_address_for_exactly_the_ban_and_retry_after_rounds_up():
    clock = Clock(0.0)
    limiter = throttle(clock, max_failures=3, window=10.0, ban=60.0)
    assert limiter.retry_after("a") == 0
    limiter.failed("a")
    clock.now = 1.0
    limiter.failed("a")
    assert limiter.retry_after("a") == 0
    clock.now = 2.0
    limiter.failed("a")                      # the third within 10 s: banned until 62
    assert limiter.retry_after("a") == 60
    clock.now = 2.5
    assert limiter.retry_after("a") == 60    # 59.5 s left: Retry-After never promises too early
    clock.now = 61.001
    assert limiter.retry_after("a") == 1
    clock.now = 61.9999
    assert limiter.retry_after("a") == 1
    clock.now = 62.0
    assert limiter.retry_after("a") == 0
    assert limiter.retry_after("b") == 0


def test_an_expired_ban_is_forgotten():
    clock = Clock(0.0)
    limiter = throttle(clock, max_failures=1, ban=5.0)
    limiter.failed("a")
    clock.now = 5.0
    assert limiter.retry_after("a") == 0
    assert limiter._banned == {}
    clock.now = 3.0     # a clock can only be read, never unban; once forgotten the entry stays gone
    assert limiter.retry_after("a") == 0


def test_failures_count_within_the_window_only_inclusive_of_its_end():
    clock = Clock(0.0)
    limiter = throttle(clock, max_failures=3, window=10.0, ban=30.0)
    for now in (0.0, 5.0, 10.5):               # 10.5 s from first to last: not within the window
        clock.now = now
        limiter.failed("a")
    assert limiter.retry_after("a") == 0
    clock.now = 15.0                           # the last three: 5, 10.5, 15 are
    limiter.failed("a")
    assert limiter.retry_after("a") == 30
    other = throttle(clock, max_failures=3, window=10.0, ban=30.0)
    for now in (100.0, 105.0, 110.0):          # exactly the window from first to last: banned
        clock.now = now
        other.failed("a")
    assert other.retry_after("a") == 30


def test_only_the_last_failures_count_not_every_failure_ever():
    clock = Clock(0.0)
    limiter = throttle(clock, max_failures=3, window=10.0, ban=30.0)
    for now in (0.0, 20.0, 21.0, 22.0):        # the oldest falls out; the last three are within 2 s
        clock.now = now
        limiter.failed("a")
    assert limiter.retry_after("a") == 30


def test_a_ban_starts_a_fresh_budget():
    clock = Clock(0.0)
    limiter = throttle(clock, max_failures=3, window=60.0, ban=5.0)
    for now in (0.0, 1.0, 2.0):
        clock.now = now
        limiter.failed("a")
    assert limiter.retry_after("a") == 5
    clock.now = 8.0
    limiter.failed("a")                        # the failures before the ban are not counted again
    assert limiter.retry_after("a") == 0
    limiter.failed("a")
    assert limiter.retry_after("a") == 0
    limiter.failed("a")
    assert limiter.retry_after("a") == 5


def test_addresses_are_counted_apart_and_a_zero_budget_never_bans():
    clock = Clock()
    limiter = throttle(clock, max_failures=2)
    limiter.failed("a")
    limiter.failed("b")
    assert limiter.retry_after("a") == limiter.retry_after("b") == 0
    limiter.failed("a")
    assert limiter.retry_after("a") == 60 and limiter.retry_after("b") == 0
    unlimited = throttle(clock, max_failures=0)
    for _ in range(50):
        unlimited.failed("a")
    assert unlimited.retry_after("a") == 0


def fill(limiter: LoginThrottle, clock: Clock, count: int, now: float) -> None:
    clock.now = now
    for number in range(count):
        limiter.failed(f"filler-{number}")


def test_a_full_table_forgets_the_quiet_addresses_and_keeps_the_active_ones():
    clock = Clock(0.0)
    limiter = throttle(clock, max_failures=2, window=60.0)
    limiter.failed("quiet")                    # t=0: quiet by t=100
    clock.now = 40.0
    limiter.failed("active")                   # t=40: exactly one window before t=100, still active
    fill(limiter, clock, MAX_TRACKED - 2, 100.0)
    limiter.failed("newcomer")                 # the table is full: the quiet one goes, the rest stay
    limiter.failed("active")
    assert limiter.retry_after("active") == 60


def test_a_full_table_of_active_addresses_starts_again_from_nothing():
    clock = Clock(0.0)
    limiter = throttle(clock, max_failures=2, window=60.0)
    limiter.failed("active")
    fill(limiter, clock, MAX_TRACKED - 1, 0.0)
    limiter.failed("newcomer")                 # nobody is quiet: everything is forgotten
    limiter.failed("active")
    assert limiter.retry_after("active") == 0
    limiter.failed("active")
    assert limiter.retry_after("active") == 60


def test_a_full_table_is_not_emptied_when_a_known_address_fails_again():
    clock = Clock(0.0)
    limiter = throttle(clock, max_failures=2, window=60.0)
    limiter.failed("active")
    fill(limiter, clock, MAX_TRACKED - 1, 0.0)
    limiter.failed("active")
    assert limiter.retry_after("active") == 60


def test_a_ban_does_not_leave_an_empty_count_that_blocks_forgetting():
    clock = Clock(0.0)
    limiter = throttle(clock, max_failures=2, window=60.0, ban=1.0)
    limiter.failed("banned")
    limiter.failed("banned")                   # banned; its count is emptied
    fill(limiter, clock, MAX_TRACKED - 2, 0.0)
    limiter.failed("active")
    limiter.failed("newcomer")                 # full: the empty count goes, the active ones stay
    assert len(limiter._failures) == MAX_TRACKED
    assert "banned" not in limiter._failures and "active" in limiter._failures


# ---- slots for slow checks ------------------------------------------------------------------------

def test_an_address_gets_its_running_and_queued_slots_then_429_at_once():
    async def scenario():
        limiter = LoginThrottle(ThrottleSettings(per_address=2, queued=2))
        assert await limiter.acquire("a") is True
        assert await limiter.acquire("a") is True
        third = asyncio.ensure_future(limiter.acquire("a"))
        fourth = asyncio.ensure_future(limiter.acquire("a"))
        await asyncio.sleep(0)
        assert not third.done() and not fourth.done()
        assert await limiter.acquire("a") is False           # the queue is full
        assert await limiter.acquire("b") is True            # another address is not held up
        limiter.release("a")
        assert await third is True                           # first come, first served
        assert not fourth.done()
        limiter.release("a")
        assert await fourth is True
        return limiter

    asyncio.run(scenario())


def test_released_slots_leave_nothing_behind():
    async def scenario():
        limiter = LoginThrottle(ThrottleSettings(per_address=1, queued=1))
        assert await limiter.acquire("a")
        waiting = asyncio.ensure_future(limiter.acquire("a"))
        await asyncio.sleep(0)
        limiter.release("a")
        assert await waiting
        limiter.release("a")
        assert limiter._slots == {}
        limiter.release("a")                                 # a stray release changes nothing
        assert limiter._slots == {}
        assert await limiter.acquire("a") is True
        waiting = asyncio.ensure_future(limiter.acquire("a"))
        await asyncio.sleep(0)
        assert not waiting.done()                            # still one slot, not two
        limiter.release("a")
        assert await waiting is True

    asyncio.run(scenario())


def test_a_release_frees_exactly_one_of_the_running_slots():
    async def scenario():
        limiter = LoginThrottle(ThrottleSettings(per_address=3, queued=0))
        assert [await limiter.acquire("a") for _ in range(4)] == [True, True, True, False]
        limiter.release("a")
        assert [await limiter.acquire("a") for _ in range(2)] == [True, False]
        limiter.release("a")
        limiter.release("a")
        assert [await limiter.acquire("a") for _ in range(3)] == [True, True, False]

    asyncio.run(scenario())


def test_a_cancelled_waiter_gives_up_its_place_in_the_queue():
    async def scenario():
        limiter = LoginThrottle(ThrottleSettings(per_address=1, queued=1))
        assert await limiter.acquire("a")
        waiting = asyncio.ensure_future(limiter.acquire("a"))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        later = asyncio.ensure_future(limiter.acquire("a"))  # the queue has room again
        await asyncio.sleep(0)
        assert not later.done()
        limiter.release("a")
        assert await later is True
        limiter.release("a")
        assert limiter._slots == {}

    asyncio.run(scenario())


@pytest.mark.parametrize("release_first", [True, False], ids=["handed-over-then-cancelled", "cancelled-then-released"])
def test_a_waiter_cancelled_around_a_release_leaves_the_slot_to_the_next(release_first):
    async def scenario():
        limiter = LoginThrottle(ThrottleSettings(per_address=1, queued=2))
        assert await limiter.acquire("a")
        first = asyncio.ensure_future(limiter.acquire("a"))
        second = asyncio.ensure_future(limiter.acquire("a"))
        await asyncio.sleep(0)
        # Released first: the slot is handed to `first`, whose cancellation passes it on. Cancelled first:
        # its future is cancelled at once (the task only sees it on its next step), and the release skips it.
        if release_first:
            limiter.release("a")
            first.cancel()
        else:
            first.cancel()
            limiter.release("a")
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await second is True
        limiter.release("a")
        assert limiter._slots == {}
        assert await limiter.acquire("a") is True             # and a newcomer gets it at once
        limiter.release("a")

    asyncio.run(scenario())
