"""Log a repeated condition once per interval, with how many times it happened.

A flood of refused calls (or dropped events) must not flood the log: the first occurrence is
logged at once, later ones within `interval_s` are only counted, and the next occurrence
after the interval logs a line that says how many were suppressed meanwhile.
"""

import logging
import threading
import time
from collections.abc import Callable


class ThrottledLog:
    def __init__(self, logger: logging.Logger | logging.LoggerAdapter, interval_s: float = 10.0,
                 level: int = logging.WARNING, clock: Callable[[], float] = time.monotonic) -> None:
        self.logger, self.interval_s, self.level, self.clock = logger, interval_s, level, clock
        self._last: dict[str, float] = {}      # key -> when last logged
        self._suppressed: dict[str, int] = {}  # key -> occurrences not logged since
        self.total: dict[str, int] = {}        # key -> all occurrences
        self._lock = threading.Lock()

    def log(self, key: str, msg: str, *args: object) -> bool:
        """Count one occurrence of `key`; log `msg % args` if the interval has passed. True if logged."""
        now = self.clock()
        with self._lock:
            self.total[key] = self.total.get(key, 0) + 1
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            suppressed = self._suppressed.pop(key, 0)
            self._last[key] = now
        if suppressed:
            msg += " (and %d more like it in the last %.0f s)"
            args = (*args, suppressed, now - last)
        self.logger.log(self.level, msg, *args)
        return True

    def flush(self) -> None:
        """Log the counts still suppressed (at shutdown), so none go unreported."""
        with self._lock:
            pending, self._suppressed = self._suppressed, {}
        for key, count in pending.items():
            self.logger.log(self.level, "%s: %d more like the last one not logged (of %d in all)", key, count,
                            self.total.get(key, 0))
