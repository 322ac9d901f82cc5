"""A log line budget: at most ``burst`` lines per ``window_s``, the rest counted (pure Python).

Every rejection is worth a line, but a flood of them must not fill the disk: the first
``burst`` of a window are logged whole, later ones are only counted, and the count is
said once the window is over (``take_suppressed``, called from a timer or before the
next line). The clock comes in as an argument.
"""

import logging
import threading
import time
from typing import Callable


class LogBudget:
    """Decide per line whether to log it; count what was held back."""

    def __init__(self, burst: int = 20, window_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self.burst = burst
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._window_start = clock()
        self._used = 0
        self._suppressed = 0
        self.suppressed_total = 0

    def allow(self) -> bool:
        """True when this line may be logged now; False counts it as suppressed."""
        with self._lock:
            now = self._clock()
            if now - self._window_start >= self.window_s:
                self._window_start, self._used = now, 0
            if self._used < self.burst:
                self._used += 1
                return True
            self._suppressed += 1
            self.suppressed_total += 1
            return False

    def take_suppressed(self) -> int:
        """Lines held back since the last call, once their window is over (else 0)."""
        with self._lock:
            if self._suppressed and self._clock() - self._window_start >= self.window_s:
                count, self._suppressed = self._suppressed, 0
                return count
            return 0


class BudgetFilter(logging.Filter):
    """A logging.Filter with a LogBudget: a library's flood becomes a few lines + a count."""

    def __init__(self, what: str, burst: int = 10, window_s: float = 10.0):
        super().__init__()
        self._what = what
        self.budget = LogBudget(burst, window_s)

    def filter(self, record: logging.LogRecord) -> bool:
        held = self.budget.take_suppressed()
        if held:
            record.msg = f'({held} more {self._what} message(s) not logged) {record.msg}'
        return self.budget.allow() or bool(held)
