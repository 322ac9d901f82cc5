"""Counts over a recent window, so that health reflects now, not a node's lifetime.

    errors = RecentEvents(window_s=60.0)
    errors.add()                      # on each error
    if errors.count():                # how many in the last 60 s
        return WARN, ...

One failure an hour ago does not latch a node's diagnostics (and its heartbeats) at WARN
forever; the lifetime totals stay in the diagnostics' values for the record.
"""

from collections import deque
import time
from typing import Callable


class RecentEvents:
    """Timestamps of events within the last window_s seconds (at most max_kept of them)."""

    def __init__(self, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 max_kept: int = 10_000):
        self.window_s = window_s
        self.clock = clock
        self.total = 0
        self.last = ''
        self._times: deque[float] = deque(maxlen=max_kept)

    def add(self, what: str = '', n: int = 1) -> None:
        """Record n events now; what (if given) is kept as the latest one's description."""
        now = self.clock()
        self._times.extend([now] * min(n, self._times.maxlen or n))
        self.total += n
        if what:
            self.last = what

    def count(self) -> int:
        """Events within the window."""
        cutoff = self.clock() - self.window_s
        while self._times and self._times[0] < cutoff:
            self._times.popleft()
        return len(self._times)
