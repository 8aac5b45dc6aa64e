"""One shutdown budget shared by the worker's services.

On SIGTERM every service finishes what it must (the batch in flight, a last snapshot,
leaving its consumer group) within what is left of one budget, so the process exits in
about ``total_s`` even when the broker is unreachable and every request would otherwise
wait for its own timeout (Kubernetes kills after 30 s by default).

>>> d = Deadline(total_s=5.0)
>>> d.budget(2.0)  # not started: the whole step budget
2.0
>>> d.start().budget(60.0) <= 5.0
True
"""

from __future__ import annotations

import time

MIN_STEP_S = 0.05


class Deadline:
    """Started by the first service that stops; each step gets ``min(step, what is left)``."""

    def __init__(self, total_s: float = 8.0) -> None:
        self.total_s = total_s
        self._end: float | None = None

    def start(self) -> Deadline:
        if self._end is None:
            self._end = time.monotonic() + self.total_s
        return self

    def budget(self, step_s: float) -> float:
        if self._end is None:
            return step_s
        return max(min(step_s, self._end - time.monotonic()), MIN_STEP_S)
