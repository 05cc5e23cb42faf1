"""Login throttling and the bound on audit rows written for unauthenticated requests (in the memory of one
server process; OWASP ASVS V2.2: per account and per address, with a time after which to retry)."""

from __future__ import annotations

import collections
import math
import threading
import time


class LoginThrottle:
    """Failed logins per key (an account name or a client address) within a sliding window."""

    def __init__(self, max_failures: int, window: float) -> None:
        self.max_failures = max_failures
        self.window = window
        self.failures: dict[str, collections.deque[float]] = {}
        self.mutex = threading.Lock()

    def _recent(self, key: str, now: float) -> collections.deque[float] | None:
        times = self.failures.get(key)
        while times and times[0] <= now - self.window:
            times.popleft()
        if times is not None and not times:
            del self.failures[key]
            return None
        return times

    def retry_after(self, key: str) -> int:
        """Seconds until ``key`` may try again (0: now)."""
        now = time.monotonic()
        with self.mutex:
            times = self._recent(key, now)
            if times is None or len(times) < self.max_failures:
                return 0
            return max(1, math.ceil(times[-self.max_failures] + self.window - now))

    def failed(self, key: str) -> None:
        now = time.monotonic()
        with self.mutex:
            times = self._recent(key, now)
            if times is None:
                times = self.failures[key] = collections.deque(maxlen=self.max_failures)
            times.append(now)
            if len(self.failures) > 100_000:  # bounded: drop the oldest keys
                for stale in list(self.failures)[:10_000]:
                    del self.failures[stale]

    def succeeded(self, key: str) -> None:
        with self.mutex:
            self.failures.pop(key, None)


class AuditBudget:
    """At most ``per_minute`` audit rows a minute for unauthenticated requests from one address; the rows
    not written are counted and reported in the next row written (``suppressed``)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.slots: dict[str, list] = {}  # address -> [minute, rows written, rows suppressed]
        self.mutex = threading.Lock()

    def take(self, address: str) -> int | None:
        """None: do not write a row; else the number of rows suppressed before this one."""
        minute = int(time.monotonic() // 60)
        with self.mutex:
            slot = self.slots.get(address)
            if slot is None or slot[0] != minute:
                if len(self.slots) > 100_000:
                    self.slots.clear()
                suppressed = slot[2] if slot is not None else 0
                self.slots[address] = [minute, 1, 0]
                return suppressed
            if slot[1] >= self.per_minute:
                slot[2] += 1
                return None
            slot[1] += 1
            suppressed, slot[2] = slot[2], 0
            return suppressed
