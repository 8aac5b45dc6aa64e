"""Spending the error budget ``delta`` over every certification test of a whole stream.

A certificate is a statistical test: it may be wrong with probability ``alpha``. A
service that re-tests every few examples, for months, runs thousands of tests; at
``alpha = delta`` each, some will pass by chance (measured: 9 of 20 runs on evidence
where no threshold was valid got certified at some point within 10,000 examples). The
guarantee must hold over the stream, so the budget is *spent*:

* evidence epoch ``e`` (1, 2, ...; a new epoch starts whenever the evidence is reset,
  after a drift) gets ``delta_e = delta * 6 / (pi^2 e^2)``;
* test ``k`` (1, 2, ...) of an epoch runs at ``alpha_k = delta_e / (k (k + 1))``;
* so the tests of the whole stream, however many, spend at most
  ``sum_e delta_e * sum_k 1/(k(k+1)) = delta``: by the union bound, the probability that
  any certificate ever issued was invalid for the evidence it was tested on is at most
  ``delta``.

Tests are scheduled by evidence, not by time: test ``k+1`` runs when the epoch has seen
``n_{k+1} = max(n_k + min_gap, ceil(growth * n_k))`` examples (``n_1 = first``), so a
stream that keeps running keeps being re-tested, ever more rarely, at ever smaller
levels. Between tests the certificate in force stays (sequential monitoring may withdraw
it at any time: tightening needs no budget).

Why spending rather than confidence sequences: the certificate is a Learn-then-Test
fixed sequence over a grid of thresholds, with importance-weighted, stratified evidence
in a sliding, ageing window (see :mod:`autolabel.trust.risk`). Spending keeps all of
that (each test is exactly the per-test procedure, at a smaller level) and makes the
guarantee hold across re-certifications; a time-uniform bound would need all evidence
since the epoch began and a separate bound per threshold.

>>> s = SpendingSchedule(delta=0.05, first=100, growth=1.5, min_gap=10)
>>> s.due(99), s.due(100)
(False, True)
>>> round(s.take(), 5), s.next_at  # test 1 of epoch 1: 0.05 * 0.6079 / 2
(0.0152, 150)
>>> round(s.take(), 5), s.next_at
(0.00507, 225)
>>> s.new_epoch(); s.epoch, s.tests, s.next_at
(2, 0, 100)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

_ZETA2 = math.pi**2 / 6


@dataclass(slots=True)
class SpendingSchedule:
    """When the next certification test runs, and at which level (see the module)."""

    delta: float
    first: int = 40
    growth: float = 1.5
    min_gap: int = 16
    epoch: int = 1
    tests: int = 0  # tests run in this epoch
    next_at: int = field(default=-1)
    spent: float = 0.0  # over the whole stream, for reporting
    per_test: bool = False  # every test at the full delta: valid per test only (opt-in)

    def __post_init__(self) -> None:
        if not 0.0 < self.delta < 1.0:
            raise ValueError(f"delta must be in (0, 1), got {self.delta}")
        if self.first < 1 or self.min_gap < 1 or self.growth < 1.0:
            raise ValueError("first and min_gap must be >= 1 and growth >= 1")
        if self.next_at < 0:
            self.next_at = self.first

    @property
    def epoch_delta(self) -> float:
        return self.delta / (_ZETA2 * self.epoch * self.epoch)

    def due(self, examples: int) -> bool:
        """Whether a test should run now that the epoch has seen ``examples``."""
        return examples >= self.next_at

    def preview(self) -> float:
        """The level the next test would run at (nothing is spent)."""
        if self.per_test:
            return self.delta
        k = self.tests + 1
        return self.epoch_delta / (k * (k + 1))

    def take(self) -> float:
        """The level of the test that runs now; schedules the next one."""
        alpha = self.preview()
        self.tests += 1
        self._advance()
        self.spent += alpha
        return alpha

    def postpone(self) -> None:
        """The test due now was skipped (it could not certify anything): nothing is
        spent, and the next one is scheduled as if it had run."""
        self._advance()

    def _advance(self) -> None:
        self.next_at = max(self.next_at + self.min_gap, math.ceil(self.next_at * self.growth))

    def new_epoch(self) -> None:
        """The evidence was reset: a new epoch, with its own (smaller) share."""
        self.epoch += 1
        self.tests = 0
        self.next_at = self.first
