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
``thin`` with it. Both averages are exponential (recent answers count most). Until both
were measured, ``thin`` is :data:`FIRST_THIN`.

>>> t = Thinning(backlog=200, share=0.2)
>>> t.thin(10), t.thin(5_000)
(1, 16)
>>> for _ in range(50):
...     t.observe(1.2e-3, thinned=False)   # every candidate: 1.2 ms
...     t.observe(140e-6, thinned=True)    # the labeling model alone: 140 us
>>> t.thin(5_000)                          # 1.06 ms extra; 20% of the time: 1 in 31
31
>>> t.thin(199)                            # keeping up: every candidate learns all
1
"""

from __future__ import annotations

import math

FIRST_THIN = 16  # before both kinds of answers were timed
MAX_THIN = 1024  # a candidate still learns one answer in this many


class Thinning:
    """The thinning of one learner; :meth:`observe` every absorbed answer it timed."""

    __slots__ = ("_alone", "_backlog", "_full", "_share", "_weight")

    def __init__(self, *, backlog: int, share: float, weight: float = 0.05) -> None:
        if not 0.0 < share < 1.0:
            raise ValueError(f"share must be in (0, 1), not {share}")
        self._backlog = backlog
        self._share = share
        self._weight = weight
        self._full: float | None = None  # seconds: an answer every candidate learned
        self._alone: float | None = None  # seconds: an answer the labeling model alone learned

    def observe(self, seconds: float, *, thinned: bool) -> None:
        """The time absorbing one answer took; ``thinned``: the other candidates skipped it."""
        if not math.isfinite(seconds) or seconds < 0:
            return
        if thinned:
            self._alone = _average(self._alone, seconds, self._weight)
        else:
            self._full = _average(self._full, seconds, self._weight)

    def thin(self, waiting: int) -> int:
        """1 when fewer than ``backlog`` answers are ``waiting``; otherwise one answer in
        how many the candidates that do not label learn."""
        if waiting < self._backlog:
            return 1
        full, alone = self._full, self._alone
        if full is None or alone is None:
            return FIRST_THIN
        extra = full - alone
        if extra <= 0:
            return 1
        needed = extra * (1.0 - self._share) / (self._share * max(alone, 1e-9))
        return max(1, min(MAX_THIN, math.ceil(needed)))


def _average(old: float | None, new: float, weight: float) -> float:
    return new if old is None else old + weight * (new - old)
