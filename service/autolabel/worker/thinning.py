"""How much the candidates that do not label learn while the learner works off a backlog.

Every candidate learns every answer while the learner keeps up. Behind a backlog the
model that labels still learns every answer, and the other candidates learn one answer
in ``thin``: enough to keep their evidence alive, cheap enough that the learner catches
up. ``thin`` comes from what answers cost here, not from a guess per model kind: the
learner times the answers every candidate learned (``full``) and the answers only the
labeling model learned (``alone``), and picks the smallest ``thin`` that keeps the other
candidates' extra work within ``share`` of its time:

    (full - alone) / thin  <=  share * ((full - alone) / thin + alone)

A Hoeffding tree next to softmax regression is skipped more often than a second linear
model would be, an ARF more still, and a machine that gets slower or faster moves
``thin`` with it. Both costs are medians of the last :data:`SAMPLES` answers of their
kind, so the odd slow answer (a certification test, a pause of the process) does not
swing it; ``thin`` is at least 2 behind a backlog, so both kinds keep being timed. Until
both were, it is :data:`FIRST_THIN`.

>>> t = Thinning(backlog=200, share=0.2)
>>> t.thin(10), t.thin(5_000)
(1, 16)
>>> for _ in range(50):
...     t.observe(1.2e-3, thinned=False)   # every candidate: 1.2 ms
...     t.observe(140e-6, thinned=True)    # the labeling model alone: 140 us
>>> t.observe(0.5, thinned=True)           # one answer that took half a second
>>> t.thin(5_000)                          # 1.06 ms extra; 20% of the time: 1 in 31
31
>>> t.thin(199)                            # keeping up: every candidate learns all
1
"""

from __future__ import annotations

import math
import statistics
from collections import deque

FIRST_THIN = 16  # before both kinds of answers were timed
MIN_THIN = 2  # behind a backlog: so the answers the labeling model learns alone are timed
MAX_THIN = 1024  # a candidate still learns one answer in this many
SAMPLES = 64  # answers of each kind the medians are taken over
MIN_SAMPLES = 8  # of each kind, before the medians are used
EVERY = 16  # observations between two computations of thin


class Thinning:
    """The thinning of one learner; :meth:`observe` every absorbed answer it timed."""

    __slots__ = ("_alone", "_backlog", "_full", "_share", "_thin", "_until")

    def __init__(self, *, backlog: int, share: float) -> None:
        if not 0.0 < share < 1.0:
            raise ValueError(f"share must be in (0, 1), not {share}")
        self._backlog = backlog
        self._share = share
        self._full: deque[float] = deque(maxlen=SAMPLES)  # seconds: every candidate learned
        self._alone: deque[float] = deque(maxlen=SAMPLES)  # seconds: the labeling model alone
        self._thin = FIRST_THIN
        self._until = EVERY  # observations left before thin is computed again

    def observe(self, seconds: float, *, thinned: bool) -> None:
        """The time absorbing one answer took; ``thinned``: the other candidates skipped it."""
        if not math.isfinite(seconds) or seconds < 0:
            return
        (self._alone if thinned else self._full).append(seconds)
        self._until -= 1
        if self._until <= 0:
            self._until = EVERY
            self._thin = self._computed()

    def behind(self, waiting: int) -> bool:
        """Whether ``waiting`` answers are a backlog (``backlog`` or more)."""
        return waiting >= self._backlog

    def thin(self, waiting: int) -> int:
        """1 when fewer than ``backlog`` answers are ``waiting``; otherwise one answer in
        how many the candidates that do not label learn."""
        return self._thin if self.behind(waiting) else 1

    def _computed(self) -> int:
        if len(self._full) < MIN_SAMPLES or len(self._alone) < MIN_SAMPLES:
            return FIRST_THIN
        alone = statistics.median(self._alone)
        extra = statistics.median(self._full) - alone
        if extra <= 0:
            return MIN_THIN
        needed = extra * (1.0 - self._share) / (self._share * max(alone, 1e-9))
        return max(MIN_THIN, min(MAX_THIN, math.ceil(needed)))
