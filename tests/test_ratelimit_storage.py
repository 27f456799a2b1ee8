"""The default rate-limit counters: fixed windows, lazy expiry, no threads."""

from __future__ import annotations

import threading

from limits import parse
from limits.strategies import FixedWindowRateLimiter

from leadvault.ratelimit_storage import LazyExpiryMemoryStorage


class FakeTime:
    def __init__(self) -> None:
        self.value = 1_000_000.0

    def __call__(self) -> float:
        return self.value


def make_storage() -> tuple[LazyExpiryMemoryStorage, FakeTime]:
    storage = LazyExpiryMemoryStorage()
    clock = FakeTime()
    storage.now = clock  # type: ignore[method-assign]
    return storage, clock


def test_the_app_counts_on_it_by_default(app):
    from leadvault.rate_limits import limiter

    assert isinstance(limiter.limiter.storage, LazyExpiryMemoryStorage)


def test_fixed_window_counts_and_restarts():
    storage, clock = make_storage()
    limiter = FixedWindowRateLimiter(storage)
    three_a_minute = parse("3/minute")
    assert [limiter.hit(three_a_minute, "ip", "a") for _ in range(4)] == [True] * 3 + [False]
    assert limiter.hit(three_a_minute, "ip", "b")  # other keys count on their own
    assert limiter.get_window_stats(three_a_minute, "ip", "a").remaining == 0
    clock.value += 59
    assert not limiter.hit(three_a_minute, "ip", "a")
    clock.value += 1.5  # the window that began with the first hit is over
    assert limiter.hit(three_a_minute, "ip", "a")
    stats = limiter.get_window_stats(three_a_minute, "ip", "a")
    assert stats.remaining == 2
    assert stats.reset_time == clock.value + 60


def test_expired_windows_are_dropped_without_a_thread():
    storage, clock = make_storage()
    threads_before = threading.active_count()
    for n in range(5_000):
        storage.incr(f"address-{n}", 3600)
    storage.incr("ip", 60)
    assert len(storage) == 5_001
    clock.value += 61
    storage.incr("other", 60)  # any hit trims what has expired
    assert len(storage) == 5_001  # "ip" went, "other" came
    assert storage.get("ip") == 0
    clock.value += 3600
    storage.incr("last", 60)
    assert len(storage) == 1
    assert threading.active_count() == threads_before


def test_clear_and_reset():
    storage, clock = make_storage()
    storage.incr("a", 60, amount=2)
    storage.incr("b", 60)
    storage.clear("a")
    assert storage.get("a") == 0
    assert storage.incr("a", 60) == 1  # a fresh window
    clock.value += 30
    assert storage.get_expiry("a") == clock.value + 30
    assert storage.reset() == 2
    assert storage.get("b") == 0
    clock.value += 31  # the stale heap entries of "a" must not break anything
    assert storage.incr("a", 60) == 1
    assert storage.check()
