"""In-process rate-limit counters for flask-limiter without a sweeping timer thread.

The ``memory://`` storage of ``limits`` (flask-limiter's engine) re-arms a timer
every 10 ms whose thread walks *every* stored key to drop expired ones. Each
submission brings a new address and so a new key, and the per-address window
is an hour: tens of thousands of keys, re-scanned a hundred times a second
while holding the GIL. Measured on the capture path, that thread took 6 % of
the process's CPU after 3 000 submissions and 12 % after 9 000, growing with
every new address. These counters expire lazily instead: a heap ordered by
expiry is trimmed on each increment, so the work per hit is O(log n) and
there is no thread at all.

Registered with ``limits`` under the ``lv-memory://`` scheme (fixed windows only:
the strategy ``leadvault.web`` configures). Like ``memory://`` the counters live
in one process; with several workers each counts its own share, which is why
``LEADVAULT_REDIS_URL`` exists.
"""

from __future__ import annotations

import heapq
import threading
import time

from limits.storage import Storage

SCHEME = "lv-memory"


class LazyExpiryMemoryStorage(Storage):
    STORAGE_SCHEME = [SCHEME]
    now = staticmethod(time.time)  # seconds; tests replace it

    def __init__(
        self, uri: str | None = None, wrap_exceptions: bool = False, **options: object
    ) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions)
        self._counts: dict[str, int] = {}
        self._expires_at: dict[str, float] = {}
        # (expires_at, key) per window started; entries of a key whose window was
        # restarted or cleared meanwhile are stale and skipped when they surface.
        self._expiry_heap: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    def _expire(self, now: float) -> None:
        heap = self._expiry_heap
        while heap and heap[0][0] <= now:
            expires_at, key = heapq.heappop(heap)
            if self._expires_at.get(key) == expires_at:
                del self._expires_at[key]
                del self._counts[key]

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = self.now()
        with self._lock:
            self._expire(now)
            count = self._counts.get(key, 0) + amount
            self._counts[key] = count
            if count == amount:  # a new window starts with this hit
                expires_at = now + expiry
                self._expires_at[key] = expires_at
                heapq.heappush(self._expiry_heap, (expires_at, key))
            return count

    def get(self, key: str) -> int:
        with self._lock:
            if self._expires_at.get(key, 0.0) <= self.now():
                return 0
            return self._counts.get(key, 0)

    def get_expiry(self, key: str) -> float:
        with self._lock:
            return self._expires_at.get(key, self.now())

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self._lock:
            cleared = len(self._counts)
            self._counts.clear()
            self._expires_at.clear()
            self._expiry_heap.clear()
            return cleared

    def clear(self, key: str) -> None:
        with self._lock:
            self._counts.pop(key, None)
            self._expires_at.pop(key, None)

    def __len__(self) -> int:
        return len(self._counts)
