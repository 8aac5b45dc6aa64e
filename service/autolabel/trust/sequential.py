"""Sequential tests that may look at the data after every observation: e-processes.

A classical test is valid once; checking it again after every new audit inflates its
error. A *test supermartingale* (an e-process) can be checked at every step: by Ville's
inequality, the probability that it ever reaches ``1/alpha`` under the null is at most
``alpha``, whenever one stops or looks. Three are built here, all by *betting*: a bettor
who wagers a fraction ``b`` of its wealth on "the next value is above ``bound``" grows
rich only if the null is false.

:class:`BettingTest`
    H0: every observation has conditional mean at most ``bound``. Anytime-valid: it
    rejects, at any time, with probability at most ``alpha`` under H0. Used to refute a
    certificate from audits: H0 "the accepted labels are wrong at most ``1 - target``
    of the time". It needs no warm-up: at ``alpha = 0.01`` three wrong audits in a row
    are enough.

:class:`BettingDetector`
    The same bets as an e-detector: each bet's wealth restarts from 1 whenever it falls
    below 1 (a CUSUM of the betting wealth). A test supermartingale remembers every
    value since its start, so a long run of right answers leaves it deep in debt, and a
    later change must pay that debt back first; the detector keeps no debt, and sees a
    change after as many wrong values as from a fresh start. Its false alarms are
    bounded as an average run length (at least ``1/alpha`` values under H0), not as a
    probability over the whole stream. Used per predicted class, at a small level: a
    class's audits come rarely, and a swapped class must show within a few of them.

:class:`ChangeDetector`
    An e-CUSUM change detector: is the stream's mean now higher than its own past mean
    plus ``margin``? Each step bets against a reference learned from the stream itself
    and restarts from 1 when the wealth falls below 1, so its false alarms are rare in
    the long run (average run length at least ``1/alpha`` steps) while a change is seen
    within a few dozen values. Used on the excess error of reviewed records and on the
    labelers' confidence.

Both mix several bet sizes (the average of test supermartingales is one), so neither
needs to know the size of the effect in advance. Pure: no I/O, no clock, no randomness.

References: Waudby-Smith & Ramdas, "Estimating means of bounded random variables by
betting" (2023); Shin, Ramdas & Rinaldo, "E-detectors: a nonparametric framework for
sequential change detection" (2023).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

DEFAULT_BETS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
"""Bet sizes as multiples of ``1 / (hi - lo)``; capped so wealth stays positive."""


@dataclass(slots=True)
class BettingTest:
    """Anytime-valid test of H0: conditional means ≤ ``bound`` for values in ``[lo, hi]``.

    >>> test = BettingTest(bound=0.05, alpha=0.01)
    >>> [test.update(0.0) for _ in range(50)][-1]  # right answers: no evidence against H0
    False
    >>> test.reset()
    >>> wrong = [test.update(1.0) for _ in range(3)]  # three wrong in a row at bound 5%
    >>> wrong, round(test.e_value)
    ([False, False, True], 839)
    """

    bound: float
    alpha: float
    lo: float = 0.0
    hi: float = 1.0
    bets: Sequence[float] = DEFAULT_BETS
    _log_wealth: list[float] | None = None
    n: int = 0
    rejected: bool = False
    _restart: ClassVar[bool] = False  # BettingDetector: no debt below a wealth of 1

    def __post_init__(self) -> None:
        if not self.lo <= self.bound < self.hi:
            raise ValueError(f"bound must be in [{self.lo}, {self.hi}), got {self.bound}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        self.reset()

    def _scaled_bets(self) -> list[float]:
        # Wealth factor 1 + b (x - bound) must stay > 0 for x = lo: b < 1 / (bound - lo).
        room = self.bound - self.lo
        cap = 0.95 / room if room > 0 else math.inf
        return [min(b / (self.hi - self.lo), cap) for b in self.bets]

    def reset(self) -> None:
        self._log_wealth = [0.0] * len(self.bets)
        self.n = 0
        self.rejected = False

    def update(self, x: float) -> bool:
        """Add one observation; True once H0 is rejected (and from then on)."""
        x = min(max(float(x), self.lo), self.hi)
        wealth = self._log_wealth
        assert wealth is not None
        restart = self._restart
        for i, b in enumerate(self._scaled_bets()):
            w = wealth[i]
            wealth[i] = (0.0 if restart and w < 0.0 else w) + math.log1p(b * (x - self.bound))
        self.n += 1
        if not self.rejected and self.e_value >= 1.0 / self.alpha:
            self.rejected = True
        return self.rejected

    @property
    def e_value(self) -> float:
        """The mixture's wealth: evidence against H0 (1 = none)."""
        wealth = self._log_wealth or [0.0]
        top = max(wealth)
        return math.exp(top) * sum(math.exp(w - top) for w in wealth) / len(wealth)


@dataclass(slots=True)
class BettingDetector(BettingTest):
    """:class:`BettingTest`'s bets with no memory of debt: an e-CUSUM against a fixed
    ``bound`` (average run length under H0 at least ``1/alpha`` values).

    >>> test, detector = BettingTest(0.1, 1e-3), BettingDetector(0.1, 1e-3)
    >>> for _ in range(40):  # a class that was right for a long time...
    ...     _ = test.update(0.0), detector.update(0.0)
    >>> def wrong_until_alarm(t):  # ...then is always wrong
    ...     return next(n for n in range(1, 100) if t.update(1.0))
    >>> wrong_until_alarm(test), wrong_until_alarm(detector)
    (17, 4)
    """

    _restart: ClassVar[bool] = True


@dataclass(slots=True)
class ChangeDetector:
    """e-CUSUM: alarm when recent values exceed the stream's own past mean by ``margin``.

    Values lie in ``[lo, hi]``. The reference is the mean of the values seen since the
    last reset (at least ``min_reference`` of them before any bet), so a slowly improving
    stream never alarms, while a jump of more than ``margin`` does within a few dozen
    values. Values join the reference only once the statistics are back at "no evidence"
    (all CUSUMs at or below 1): values that are building up to an alarm do not drag the
    reference up with them. One CUSUM per bet size; an alarm needs one of them at
    ``len(bets) / alpha`` (Bonferroni), so the average run length under no change is at
    least ``1/alpha``.

    >>> import random
    >>> rng = random.Random(0)
    >>> det = ChangeDetector(margin=0.1, alpha=1e-4)
    >>> any(det.update(rng.random() < 0.1) for _ in range(5000))  # stationary 10%
    False
    >>> det.alarms, sum(det.update(rng.random() < 0.5) for _ in range(60)) > 0  # jump to 50%
    (0, True)
    """

    margin: float
    alpha: float
    lo: float = 0.0
    hi: float = 1.0
    min_reference: int = 30
    bets: Sequence[float] = DEFAULT_BETS
    _cusum: list[float] | None = None  # log-statistics, one per bet
    _sum: float = 0.0
    _count: int = 0
    _pending_sum: float = 0.0  # values since the statistics last showed no evidence
    _pending_count: int = 0
    alarms: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.margin < self.hi - self.lo:
            raise ValueError(f"margin must be in (0, {self.hi - self.lo}), got {self.margin}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        self.reset()

    def reset(self) -> None:
        """Forget the reference and the statistics (after a change was handled)."""
        self._cusum = [0.0] * len(self.bets)
        self._sum = 0.0
        self._count = 0
        self._pending_sum = 0.0
        self._pending_count = 0

    @property
    def reference(self) -> float | None:
        """The mean the stream is compared with (None until ``min_reference`` values)."""
        return self._sum / self._count if self._count >= self.min_reference else None

    @property
    def statistic(self) -> float:
        """The largest CUSUM e-statistic (1 = no evidence of a change)."""
        return math.exp(max(self._cusum or [0.0]))

    def update(self, x: float) -> bool:
        """Add one value; True when it raises an alarm (the statistics then restart)."""
        # Runs once per reviewed answer: the arithmetic of ``reference`` and of the bets,
        # written out with locals (the same operations on the same values).
        lo, hi = self.lo, self.hi
        x = min(max(float(x), lo), hi)
        cusum = self._cusum
        assert cusum is not None
        fired = False
        if self._count >= self.min_reference:  # the reference is known
            bound = min(self._sum / self._count + self.margin, hi - 1e-9)
            room = bound - lo
            cap = 0.95 / room if room > 0 else math.inf
            threshold = math.log(len(self.bets) / self.alpha)
            span, excess, log1p = hi - lo, x - bound, math.log1p
            for i, b in enumerate(self.bets):
                bet = min(b / span, cap)
                c = cusum[i]
                cusum[i] = c = (0.0 if c < 0.0 else c) + log1p(bet * excess)  # max(c, 0.0)
                if c >= threshold:
                    fired = True
        if fired:
            self.alarms += 1
            self._cusum = [0.0] * len(self.bets)
            self._pending_sum = 0.0
            self._pending_count = 0
            return True
        self._pending_sum += x
        self._pending_count += 1
        if max(cusum or [0.0]) <= 0.0:  # no evidence of a change: it is the reference
            self._sum += self._pending_sum
            self._count += self._pending_count
            self._pending_sum = 0.0
            self._pending_count = 0
        return False
