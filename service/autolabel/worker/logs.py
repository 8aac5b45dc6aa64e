"""Logging for a long-running worker: repeated warnings are rate-limited.

When the brokers go away, Kafka clients log the same complaint for every retry; 45 s of
outage used to add thousands of lines. :class:`RateLimit` lets the first ``burst``
records of each (logger, message template, level) through per ``period_s`` and folds
the rest into a count, reported on the next one that passes.

>>> import logging
>>> limit = RateLimit(period_s=60.0, burst=2, clock=iter(range(100)).__next__)
>>> def rec(msg="broker %s down", arg="b1"):
...     return logging.LogRecord("kafka", logging.WARNING, __file__, 1, msg, (arg,), None)
>>> [limit.filter(rec()) for _ in range(4)]
[True, True, False, False]
>>> limit = RateLimit(period_s=2.0, burst=1, clock=iter([0, 1, 1.5, 5]).__next__)
>>> [limit.filter(rec()) for _ in range(3)]
[True, False, False]
>>> r = rec(); limit.filter(r), r.getMessage()
(True, 'broker b1 down (2 similar messages suppressed in the last 2 s)')
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_KEYS = 1000


class RateLimit(logging.Filter):
    """At most ``burst`` records per message template and ``period_s``, from ``level`` up."""

    def __init__(
        self,
        period_s: float = 10.0,
        burst: int = 3,
        level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.period_s = period_s
        self.burst = burst
        self.level = level
        self._clock = clock
        self._windows: OrderedDict[tuple[str, str, int], list[float]] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level:
            return True
        key = (record.name, str(record.msg), record.levelno)
        now = self._clock()
        window = self._windows.get(key)
        if window is None or now - window[0] >= self.period_s:
            suppressed = int(window[2]) if window is not None else 0
            self._windows[key] = [now, 1, 0]
            self._windows.move_to_end(key)
            while len(self._windows) > MAX_KEYS:
                self._windows.popitem(last=False)
            if suppressed:
                record.msg = (
                    f"{record.getMessage()} ({suppressed} similar messages suppressed in the"
                    f" last {self.period_s:g} s)"
                )
                record.args = None
            return True
        window[1] += 1
        if window[1] <= self.burst:
            return True
        window[2] += 1
        return False


def install(limit: RateLimit | None = None) -> RateLimit:
    """Attach one rate limit to every handler of the root logger (idempotent per handler)."""
    limit = limit or RateLimit()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RateLimit) for f in handler.filters):
            handler.addFilter(limit)
    return limit
