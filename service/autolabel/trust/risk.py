"""Certified auto-accept thresholds: the "Trust" policy of DESIGN.md.

A prediction of label ``k`` with confidence ``c`` is auto-accepted when
``c >= certificate.threshold_for(k)``; everything else goes to human review. The
:class:`RiskController` picks the loosest (lowest) thresholds whose error rate among the
accepted examples is, with probability at least ``1 - delta``, at most
``epsilon = 1 - target_precision``. With too little evidence the threshold is
``inf`` (:data:`NO_THRESHOLD`): nothing is accepted, everything is reviewed.

Evidence
--------
Each feedback example is ``(confidence, predicted, correct, weight)``, scored *before*
the model learned it. Two kinds arrive:

* ``review``: below the threshold in force every record is reviewed, weight ``1``;
* ``audit``: above it only a random share ``audit_rate`` of the accepted records is
  reviewed anyway, weight ``1 / audit_rate`` (each stands for that many accepted records).

The evidence is a sliding window of the last ``window`` feedback examples (default
1,000; an optional second ``recent_window`` can be tested alongside at half the
``delta``). Running sums per (predicted label, grid bin) make :meth:`RiskController.observe`
O(1) (a ``bisect`` and a few additions); evicted examples are subtracted and the sums are
rebuilt from the window once per ``window`` evictions to stop floating-point drift.
:meth:`RiskController.reset` forgets everything (call it on drift, so the policy is
re-certified on post-drift evidence only).

How audits and reviews are combined (``weighting``)
---------------------------------------------------
The target is the error rate among *all* records with ``c >= t``, but reviewers see a
biased sample of them: the region below the threshold in force completely, the region
above it through a 5-10 % audit. Counting audits with weight 1 ("naive") over-represents
whatever was fully reviewed. Both estimators below are unbiased for the window's
population:

* ``"horvitz_thompson"``: Hajek (self-normalised Horvitz-Thompson) error
  ``p = sum(w * err) / sum(w)`` over the examples with ``c >= t``, turned into a
  Clopper-Pearson bound with the Kish effective sample size
  ``n_eff = (sum w)**2 / sum(w**2)`` and ``p * n_eff`` effective errors
  (:func:`weighted_error_bound`).
* ``"stratified"`` (default): post-stratification on ``strata`` equal-width confidence
  strata. The number of records a stratum holds is estimated by Horvitz-Thompson (the sum
  of its weights ``W_s``), and that mass is shared equally by the stratum's ``n_s`` reviewed
  examples, audits and reviews alike: each counts ``u_s = W_s / n_s``. The error estimate
  and the Kish ``n_eff`` are then computed as above with weights ``u_s``. Within a stratum
  whether an example was reviewed depends on its confidence and the audit coin only, not
  on its correctness, so a plain within-stratum mean is unbiased; across strata the
  Horvitz-Thompson masses undo the sampling bias. It is far more efficient than raw
  Horvitz-Thompson, where a single audit (weight 20) next to the unit-weight reviews of
  the same region cuts ``n_eff`` by more than half (on ImageSegments raw HT kept
  certificates alive for only ~15 % of the oracle's automation). Strata much finer than
  the grid (one per bin) bring the same loss back; 4-20 strata measured alike.

Testing: Learn-then-Test fixed sequence from an evidence-dependent start
---------------------------------------------------------------------------
Candidate thresholds form a fixed ``grid`` (0.20..0.99 by 0.005, then up to 1.0). For a
pool of examples the hypotheses ``H_t: error(c >= t) > epsilon`` are tested from strict
to loose with a one-sided Clopper-Pearson bound at level ``alpha``, stopping at the first
failure (fixed-sequence testing, as in Learn-then-Test); the loosest threshold passed is
certified, and every threshold passed holds simultaneously with family-wise error
``<= alpha``, at *full* ``alpha`` whatever the grid size.

Plain fixed sequence starting at the strictest grid point dies on one confidently wrong
example at the very top. Here the sequence *starts at the strictest grid point whose
effective sample size is at least* ``max(min_evidence, n0)`` (``n0``: the size at which
zero errors can pass). The start depends on the confidences and weights only, never on
correctness, so conditional on them the order is fixed and the procedure stays valid at
full ``alpha``. ``starts > 1`` runs several such sequences (evidence ``min_evidence *
2**i``) at ``alpha / starts`` each and keeps the loosest; it did not help in the
measurements below, so the default is 1. A Bonferroni-corrected grid was the
reference to beat; it measured clearly worse (numbers below).

Per-class thresholds and the ``delta`` budget (``mode``)
--------------------------------------------------------
* ``"global"`` (default): one pool, one threshold for every label, level ``delta``.
* ``"per_class"``: each predicted class whose window ``n_eff`` reaches
  ``min_class_evidence`` is its own pool with its own threshold (``inf`` if its test
  fails: such a class is not auto-accepted, its errors are not averaged away); all other
  classes (rare or never seen) share one pooled "rest" test whose threshold is the
  certificate's ``global_threshold``. Bonferroni over the pools that can run a test at
  all (decided by counts, not correctness). When all tests hold, every part of the
  accepted region has error ``<= epsilon``, hence so has the whole.
* ``"both"``: ``delta / 2`` for each family; afterwards the policy with the larger
  Horvitz-Thompson estimate of automation is used. Both guarantees hold simultaneously
  with probability ``>= 1 - delta``, so choosing after the fact is safe.

With a ``recent_window`` the budget is further split in two between the windows, and the
best policy over windows and families is used. ``precision_lower_bound`` is the minimum
over the certified parts, a joint lower bound on the precision of the whole policy.

What the guarantee is, and over which time
------------------------------------------
One test (:meth:`RiskController.certify` at level ``alpha``) is exact (Clopper-Pearson)
for unit weights and exchangeable evidence; with weights it rests on the Kish
approximation ("valid-ish"). It refers to the population the window describes: a model
that keeps learning, or drift, breaks exchangeability. The window forgets (by examples,
and by records with :meth:`RiskController.expire`), and drift detection must call
:meth:`RiskController.reset`.

A service re-tests for as long as it runs, so the guarantee must hold over every test of
the stream, not per test. The choice here is **delta-spending**
(:class:`autolabel.trust.spending.SpendingSchedule`): the tests of a stream run at levels
that sum to ``delta``, so by the union bound the probability that any certificate ever
issued was invalid for its evidence is at most ``delta``. Why not a time-uniform bound
(a confidence sequence, stitched or by betting): it would need all the evidence since the
epoch began (the young model's early errors never leave it) and one sequence per
threshold with the same multiplicity problem; measured with a betting e-process per
threshold, on cumulative or staggered evidence, it certified less than spending does
(ImageSegments 0.23-0.41 of the oracle vs 0.49). Spending keeps the sliding window,
the stratified weights and the fixed sequence exactly as they were, each test simply at a
smaller level; the schedule makes later tests rarer so the levels shrink slowly.

Cost
----
:meth:`RiskController.observe` is O(1). :meth:`RiskController.certificate` is cached and
recomputed lazily, at most once every ``recompute_every`` (16) observations:
O(labels x grid) array work plus one vectorised Beta quantile per pool (well under a
millisecond at the defaults).

Measured (simulation harness outside the repo, 4 seeds each)
------------------------------------------------------------
Loop as in ``autolabel evaluate``: records in file order; predict, accept if
``conf >= threshold_for(pred)`` unless the audit coin (``audit_rate``) sends it to review;
reviewed records are observed (weight 1, audits ``1 / audit_rate``) and learned; the
oracle is the best single threshold in hindsight on the run's own scores. ``auto``:
share auto-accepted; ``prec``: realised precision of accepted labels (mean; min over
seeds); ``ratio``: auto / oracle automation. Target 0.95, delta 0.05, defaults unless
noted. Softmax = ``StandardScaler | SoftmaxRegression``.

============================  =====  =====  ===========  ======  =====  =============
stream / model / audit rate   auto   prec   prec (min)   oracle  ratio  Bonferroni grid
============================  =====  =====  ===========  ======  =====  =============
ImageSegments softmax  0.05   0.398  0.975  0.973        0.637   0.62   0.52
ImageSegments softmax  0.10   0.384  0.974  0.970        0.634   0.61   0.51
ImageSegments ARF      0.05   0.163  0.993  0.989        0.544   0.30   0.22
ImageSegments HAT      0.05   0.048  0.996  0.991        0.565   0.09   0.06
Phishing softmax       0.05   0.252  0.977  0.975        0.783   0.32   0.12
Phishing softmax       0.10   0.248  0.974  0.969        0.779   0.32   0.11
SEA 0->2 @5000 softmax 0.05   0.411  0.959  0.955        0.562   0.73   0.65
============================  =====  =====  ===========  ======  =====  =============

Other variants (ImageSegments softmax, audit 0.05, ratio): ``mode="both"`` 0.59 (drift
stream 0.80, but Phishing realised 0.945 in 3/4 seeds); raw Horvitz-Thompson + Kish
0.09; window 3000 instead of 1000 0.2-0.5 (old evidence from the still-learning model
keeps certificates from forming); ``starts=3`` and ``recent_window=500`` no gain.
Drift stream without reset: post-drift realised precision 0.941 (min 0.933) at audit
0.05, 0.948 at 0.10, i.e. the guarantee breaks; ``reset()`` at the drift point restores
0.980 / 0.975 (automation after the drift 0.37 -> 0.31).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import betainc as _betainc
from scipy.stats import beta as _beta_dist

__all__ = [
    "NO_THRESHOLD",
    "Certificate",
    "RiskConfig",
    "RiskController",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "default_grid",
    "fixed_sequence_threshold",
    "oracle_threshold",
    "weighted_error_bound",
]

NO_THRESHOLD: float = math.inf
"""Threshold meaning "nothing certified": no confidence reaches it, everything is reviewed."""

Mode = Literal["global", "per_class", "both"]
_MODES: tuple[str, ...] = ("global", "per_class", "both")
Weighting = Literal["stratified", "horvitz_thompson"]
_WEIGHTINGS: tuple[str, ...] = ("stratified", "horvitz_thompson")
_STATE_VERSION = 1

FloatArray = NDArray[np.float64]


# --------------------------------------------------------------------------------------------
# Pure statistics
# --------------------------------------------------------------------------------------------


def clopper_pearson_upper(errors: float, n: float, alpha: float) -> float:
    """One-sided Clopper-Pearson upper confidence bound on a binomial error rate.

    Returns ``u`` such that ``P(p > u) <= alpha`` when ``errors ~ Binomial(n, p)``,
    i.e. the ``1 - alpha`` quantile of ``Beta(errors + 1, n - errors)``. Non-integer
    ``errors`` and ``n`` (weighted / effective counts) are accepted: the Beta quantile is
    evaluated at the real-valued parameters.

    Parameters
    ----------
    errors : float
        Observed (possibly effective) number of errors; clipped to ``[0, n]``.
    n : float
        (Effective) number of trials. ``n <= 0`` carries no evidence and gives ``1.0``.
    alpha : float
        Miscoverage level in ``(0, 1)``.

    Returns
    -------
    float
        Upper bound in ``[0, 1]``.

    Examples
    --------
    Zero errors out of ``n`` has the closed form ``1 - alpha ** (1 / n)``:

    >>> round(clopper_pearson_upper(0, 59, 0.05), 6) == round(1 - 0.05 ** (1 / 59), 6)
    True
    >>> round(clopper_pearson_upper(1, 100, 0.05), 4)
    0.0466
    >>> clopper_pearson_upper(3, 0, 0.05), clopper_pearson_upper(5, 5, 0.05)
    (1.0, 1.0)
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if not (math.isfinite(n) and n > 0.0):
        return 1.0
    k = min(max(float(errors), 0.0), float(n))
    if k >= n:
        return 1.0
    return float(_beta_dist.ppf(1.0 - alpha, k + 1.0, n - k))


def clopper_pearson_lower(errors: float, n: float, alpha: float) -> float:
    """One-sided Clopper-Pearson lower confidence bound on a binomial rate.

    ``P(p < lower) <= alpha``; 0 when there are no errors.

    >>> clopper_pearson_lower(0, 10, 0.05)
    0.0
    >>> round(clopper_pearson_lower(5, 5, 0.05), 4) == round(0.05 ** (1 / 5), 4)
    True
    """
    if n <= 0 or errors <= 0:
        return 0.0
    k = min(float(errors), float(n))
    return float(_beta_dist.ppf(alpha, k, n - k + 1.0))


def weighted_error_bound(
    weighted_errors: float, total_weight: float, total_weight_sq: float, alpha: float
) -> float:
    """Upper bound on an error rate estimated from importance-weighted examples.

    The Hájek (self-normalised Horvitz-Thompson) error estimate ``p = E / W`` with
    ``E = sum(w * error)`` and ``W = sum(w)`` is turned into a Clopper-Pearson bound on the
    Kish effective sample size ``n_eff = W**2 / sum(w**2)`` with ``p * n_eff`` effective
    errors. With unit weights this is exactly :func:`clopper_pearson_upper`.

    Parameters
    ----------
    weighted_errors : float
        ``sum(w * error)``.
    total_weight : float
        ``sum(w)``.
    total_weight_sq : float
        ``sum(w ** 2)``.
    alpha : float
        Miscoverage level.

    Returns
    -------
    float
        Upper bound in ``[0, 1]``.

    Examples
    --------
    Equal weights are just a rescaled binomial sample:

    >>> weighted_error_bound(20.0, 2000.0, 40000.0, 0.05) == clopper_pearson_upper(1, 100, 0.05)
    True
    """
    if total_weight <= 0.0 or total_weight_sq <= 0.0:
        return 1.0
    n_eff = total_weight * total_weight / total_weight_sq
    return clopper_pearson_upper(weighted_errors / total_weight * n_eff, n_eff, alpha)


def fixed_sequence_threshold(
    grid: Sequence[float],
    errors: ArrayLike,
    n: ArrayLike,
    epsilon: float,
    alpha: float,
    start_evidence: float,
) -> tuple[float, float]:
    """Learn-then-Test fixed-sequence testing from strict to loose thresholds.

    ``grid`` is ascending; ``errors[j]`` and ``n[j]`` are the (effective) error count and
    sample size of the examples with confidence ``>= grid[j]``. The sequence starts at the
    strictest grid point whose evidence ``n[j] >= start_evidence`` (a choice that depends
    on the confidences only, never on correctness) and walks towards looser thresholds,
    rejecting ``H_j: error(grid[j]) > epsilon`` while the Clopper-Pearson bound at level
    ``alpha`` stays ``<= epsilon``; it stops at the first failure. Every threshold passed
    is then simultaneously valid with family-wise error ``<= alpha``.

    Parameters
    ----------
    grid : sequence of float
        Candidate thresholds, strictly ascending.
    errors, n : array_like
        Effective error counts and sample sizes per grid point.
    epsilon : float
        Tolerated error rate, ``1 - target_precision``.
    alpha : float
        Level of the whole sequence.
    start_evidence : float
        Minimum ``n`` at the starting point.

    Returns
    -------
    tuple of float
        ``(threshold, error_upper_bound)`` for the loosest certified grid point, or
        ``(inf, 1.0)`` when nothing is certified.

    Examples
    --------
    >>> grid = [0.5, 0.7, 0.9]
    >>> fixed_sequence_threshold(grid, [30, 4, 0], [300, 200, 80], 0.05, 0.05, 50)[0]
    0.7
    >>> fixed_sequence_threshold(grid, [30, 4, 0], [300, 200, 80], 0.05, 0.05, 500)
    (inf, 1.0)
    """
    err = np.asarray(errors, dtype=np.float64)
    nn = np.asarray(n, dtype=np.float64)
    start = _start_index(nn, start_evidence)
    if start < 0:
        return NO_THRESHOLD, 1.0
    j, bound = _sequence(err, nn, start, epsilon, alpha)
    return (float(grid[j]), bound) if j >= 0 else (NO_THRESHOLD, 1.0)


def _start_index(n: FloatArray, start_evidence: float) -> int:
    """Largest index with ``n[j] >= start_evidence`` (``n`` is non-increasing), or -1."""
    ok = np.flatnonzero(n >= max(start_evidence, 1e-12))
    return int(ok[-1]) if ok.size else -1


def _sequence(
    errors: FloatArray, n: FloatArray, start: int, epsilon: float, alpha: float
) -> tuple[int, float]:
    """Walk from ``start`` down while the CP bound is ``<= epsilon``.

    Returns the last passing index and its bound, or ``(-1, 1.0)``. ``ucb <= epsilon`` is
    checked as ``I_epsilon(k + 1, n - k) >= 1 - alpha`` (regularised incomplete beta, a
    cheap ufunc); the Beta quantile is only evaluated for the chosen point.
    """
    k = np.clip(errors[: start + 1], 0.0, np.maximum(n[: start + 1], 0.0))
    nn = n[: start + 1]
    ok = (nn > 0.0) & (k < nn)
    passes = np.zeros(start + 1, dtype=bool)
    passes[ok] = _betainc(k[ok] + 1.0, nn[ok] - k[ok], epsilon) >= 1.0 - alpha
    fails = np.flatnonzero(~passes)
    last_fail = int(fails[-1]) if fails.size else -1
    if last_fail == start:
        return -1, 1.0
    j = last_fail + 1
    return j, clopper_pearson_upper(float(errors[j]), float(n[j]), alpha)


def oracle_threshold(confidences: ArrayLike, corrects: ArrayLike, target_precision: float) -> float:
    """Best single threshold in hindsight: the lowest ``t`` with precision ``>= target``.

    Precision at ``t`` is the realised share of correct predictions among all examples
    with ``confidence >= t`` (ties included). Only observed confidences are candidates.

    Parameters
    ----------
    confidences : array_like
        Confidence of each prediction.
    corrects : array_like of bool
        Whether each prediction was right.
    target_precision : float
        Required precision.

    Returns
    -------
    float
        The threshold, or ``inf`` when no threshold meets the target.

    Examples
    --------
    >>> oracle_threshold([0.9, 0.8, 0.7, 0.6], [True, True, False, True], 0.75)
    0.6
    >>> oracle_threshold([0.95, 0.9, 0.8, 0.7, 0.6], [False, True, True, True, True], 0.75)
    0.6
    >>> oracle_threshold([0.9], [False], 0.9)
    inf
    """
    c = np.asarray(confidences, dtype=np.float64).ravel()
    ok = np.asarray(corrects, dtype=bool).ravel()
    if c.shape != ok.shape:
        raise ValueError("confidences and corrects must have the same length")
    if c.size == 0:
        return NO_THRESHOLD
    order = np.argsort(-c, kind="stable")
    cs, oks = c[order], ok[order]
    precision = np.cumsum(oks) / np.arange(1, c.size + 1)
    last_of_tie = np.append(cs[1:] != cs[:-1], True)
    good = np.flatnonzero(last_of_tie & (precision >= target_precision))
    return float(cs[good[-1]]) if good.size else NO_THRESHOLD


# --------------------------------------------------------------------------------------------
# Configuration and result
# --------------------------------------------------------------------------------------------


def default_grid() -> tuple[float, ...]:
    """Default candidate thresholds: 0.20 to 0.99 in steps of 0.005, then up to 1.0.

    Examples
    --------
    >>> g = default_grid()
    >>> g[0], g[-1], len(g)
    (0.2, 1.0, 166)
    """
    coarse = [round(0.2 + 0.005 * i, 4) for i in range(round((0.99 - 0.2) / 0.005))]
    fine = [0.99, 0.9925, 0.995, 0.9975, 0.999, 0.9995, 0.9999, 1.0]
    return tuple(coarse + fine)


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """Settings of :class:`RiskController`.

    Attributes
    ----------
    target_precision : float
        Required precision of auto-accepted labels.
    delta : float
        Allowed probability that a certified policy misses the target.
    window : int
        Number of most recent feedback examples kept as evidence (oldest forgotten first).
    recent_window : int or None
        Size of a second, shorter evidence window tested alongside (``None``: off). It
        lets the policy certify on recent evidence while a model is still improving or
        after a change, at the price of splitting ``delta`` between the two windows.
    min_evidence : float
        Effective sample size a grid point needs before a test sequence may start there.
    starts : int
        Number of test sequences; sequence ``i`` starts where the effective sample size
        reaches ``min_evidence * 2**i`` and runs at level ``delta_pool / starts``.
    min_class_evidence : float
        Effective sample size a predicted class needs to get its own threshold.
    mode : {"global", "per_class", "both"}
        Policy family, see the module docstring.
    weighting : {"stratified", "horvitz_thompson"}
        How importance weights enter the error estimate, see the module docstring.
    strata : int
        Number of equal-width confidence strata of ``[0, 1]`` used by ``"stratified"``.
    grid : tuple of float
        Candidate thresholds, strictly ascending (fixed in advance).
    recompute_every : int
        Recompute the certificate at most once every this many observations.
    """

    target_precision: float = 0.95
    delta: float = 0.05
    window: int = 1000
    recent_window: int | None = None
    min_evidence: float = 200.0
    starts: int = 1
    min_class_evidence: float = 300.0
    mode: Mode = "global"
    weighting: Weighting = "stratified"
    strata: int = 10
    grid: tuple[float, ...] = field(default_factory=default_grid)
    recompute_every: int = 16

    def __post_init__(self) -> None:
        if not 0.0 < self.target_precision < 1.0:
            raise ValueError("target_precision must be in (0, 1)")
        if not 0.0 < self.delta < 1.0:
            raise ValueError("delta must be in (0, 1)")
        if self.window < 1:
            raise ValueError("window must be >= 1")
        if self.recent_window is not None and not 1 <= self.recent_window < self.window:
            raise ValueError("recent_window must be None or in [1, window)")
        if not self.min_evidence > 0.0 or not self.min_class_evidence > 0.0:
            raise ValueError("min_evidence and min_class_evidence must be > 0")
        if self.starts < 1:
            raise ValueError("starts must be >= 1")
        if self.mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}")
        if self.weighting not in _WEIGHTINGS:
            raise ValueError(f"weighting must be one of {_WEIGHTINGS}")
        if not self.grid or any(b <= a for a, b in zip(self.grid, self.grid[1:], strict=False)):
            raise ValueError("grid must be non-empty and strictly ascending")
        if not all(math.isfinite(g) for g in self.grid):
            raise ValueError("grid must be finite")
        if self.strata < 1:
            raise ValueError("strata must be >= 1")
        if self.recompute_every < 1:
            raise ValueError("recompute_every must be >= 1")

    @property
    def epsilon(self) -> float:
        """Tolerated error rate ``1 - target_precision``."""
        return 1.0 - self.target_precision

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able representation."""
        return {
            "target_precision": self.target_precision,
            "delta": self.delta,
            "window": self.window,
            "recent_window": self.recent_window,
            "min_evidence": self.min_evidence,
            "starts": self.starts,
            "min_class_evidence": self.min_class_evidence,
            "mode": self.mode,
            "weighting": self.weighting,
            "strata": self.strata,
            "grid": list(self.grid),
            "recompute_every": self.recompute_every,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> RiskConfig:
        """Inverse of :meth:`to_dict` (unknown keys are ignored)."""
        kw: dict[str, object] = {}
        for key in ("target_precision", "delta", "min_evidence", "min_class_evidence"):
            if key in data:
                kw[key] = float(_num(data[key]))
        for key in ("window", "starts", "strata", "recompute_every"):
            if key in data:
                kw[key] = int(_num(data[key]))
        if "recent_window" in data:
            rw = data["recent_window"]
            kw["recent_window"] = None if rw is None else int(_num(rw))
        if "mode" in data:
            mode = str(data["mode"])
            if mode not in _MODES:
                raise ValueError(f"unknown mode {mode!r}")
            kw["mode"] = mode
        if "weighting" in data:
            weighting = str(data["weighting"])
            if weighting not in _WEIGHTINGS:
                raise ValueError(f"unknown weighting {weighting!r}")
            kw["weighting"] = weighting
        if "grid" in data:
            grid = data["grid"]
            if not isinstance(grid, Iterable):
                raise ValueError("grid must be a list of numbers")
            kw["grid"] = tuple(float(_num(g)) for g in grid)
        return cls(**kw)  # type: ignore[arg-type]


def _num(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class Certificate:
    """Certified acceptance policy.

    Attributes
    ----------
    global_threshold : float
        Threshold for labels without their own entry (``inf``: nothing accepted).
    class_thresholds : Mapping[str, float]
        Per predicted-label thresholds; ``inf`` for a class tested and not certified.
    precision_lower_bound : float
        Lower confidence bound on precision that holds jointly for every certified part
        of the policy (the minimum over parts), hence for the whole accepted region;
        ``0.0`` when nothing is certified.
    evidence : float
        Summed importance weight of the feedback in the window.
    examples : int
        Number of feedback examples in the window.
    share : float
        Estimated share of records the policy accepts (Horvitz-Thompson over the window):
        what candidates are compared on.
    """

    global_threshold: float = NO_THRESHOLD
    class_thresholds: Mapping[str, float] = field(default_factory=dict)
    precision_lower_bound: float = 0.0
    evidence: float = 0.0
    examples: int = 0
    share: float = 0.0

    def threshold_for(self, label: str) -> float:
        """Threshold that applies to a prediction of ``label``."""
        return self.class_thresholds.get(label, self.global_threshold)

    def accepts(self, confidence: float, label: str) -> bool:
        """Whether a prediction of ``label`` with ``confidence`` may be auto-accepted."""
        return confidence >= self.threshold_for(label)

    @property
    def certified(self) -> bool:
        """Whether any label can be auto-accepted at all."""
        return math.isfinite(self.global_threshold) or any(
            math.isfinite(t) for t in self.class_thresholds.values()
        )


# --------------------------------------------------------------------------------------------
# Controller
# --------------------------------------------------------------------------------------------


class _Bins:
    """Per-label sufficient statistics over grid bins (bin ``i``: ``i`` grid points <= c)."""

    __slots__ = ("cnt", "count", "ec", "w", "w2", "we")

    def __init__(self, size: int) -> None:
        self.count = 0
        self.cnt = [0.0] * size
        self.ec = [0.0] * size
        self.w = [0.0] * size
        self.w2 = [0.0] * size
        self.we = [0.0] * size

    def add(self, idx: int, weight: float, error: bool, sign: float) -> None:
        self.count += 1 if sign > 0 else -1
        self.cnt[idx] += sign
        self.w[idx] += sign * weight
        self.w2[idx] += sign * weight * weight
        if error:
            self.ec[idx] += sign
            self.we[idx] += sign * weight


@dataclass(frozen=True, slots=True)
class _Pool:
    """Suffix (``confidence >= grid[j]``) statistics of a set of examples."""

    w: FloatArray
    n_eff: FloatArray
    errors_eff: FloatArray

    @classmethod
    def of(cls, bins: Sequence[_Bins], strata: NDArray[np.intp] | None) -> _Pool:
        """Pool ``bins``; ``strata`` maps each bin to its stratum (``None``: plain HT)."""
        size = len(bins[0].cnt) if bins else 1
        cnt, ec, w, w2, we = (np.zeros(size) for _ in range(5))
        for b in bins:
            cnt += b.cnt
            ec += b.ec
            w += b.w
            w2 += b.w2
            we += b.we
        cnt, ec, w, w2, we = (np.maximum(a, 0.0) for a in (cnt, ec, w, w2, we))
        if strata is not None:
            # Post-stratify: a stratum's population is estimated by Horvitz-Thompson (sum of
            # its weights) and shared equally by its reviewed examples, so every example of
            # stratum s carries u_s = W_s / n_s whatever way it reached review.
            n_s = np.bincount(strata, weights=cnt)
            w_s = np.bincount(strata, weights=w)
            with np.errstate(divide="ignore", invalid="ignore"):
                unit = np.where(n_s > 0.0, w_s / n_s, 0.0)[strata]
            w, w2, we = cnt * unit, cnt * unit * unit, ec * unit
        sw, sw2, swe = (_suffix(a) for a in (w, w2, we))
        with np.errstate(divide="ignore", invalid="ignore"):
            n_eff = np.where(sw2 > 0.0, sw * sw / sw2, 0.0)
            errors_eff = np.where(sw2 > 0.0, swe * sw / sw2, 0.0)
        return cls(sw, n_eff, errors_eff)


def _suffix(a: FloatArray) -> FloatArray:
    """``out[j] = a[j + 1:].sum()`` for ``j < len(a) - 1``."""
    return np.cumsum(a[::-1])[::-1][1:]


class _Window:
    """A count-limited evidence window with per-label binned running sums."""

    __slots__ = ("bins", "evictions", "nbins", "records", "size", "weight")

    def __init__(self, size: int, nbins: int) -> None:
        self.size = size
        self.nbins = nbins
        self.records: deque[tuple[float, str, bool, float, int, int]] = deque()
        self.bins: dict[str, _Bins] = {}
        self.weight = 0.0
        self.evictions = 0

    def add(self, rec: tuple[float, str, bool, float, int, int]) -> None:
        self.records.append(rec)
        self._apply(rec, 1.0)
        while len(self.records) > self.size:
            self._evict()

    def expire(self, before: int) -> int:
        """Drop the records stamped before ``before`` (the record clock); how many."""
        dropped = 0
        while self.records and self.records[0][5] < before:
            self._evict()
            dropped += 1
        return dropped

    def _evict(self) -> None:
        old = self.records.popleft()
        self._apply(old, -1.0)
        self.evictions += 1
        if self.evictions >= self.size:
            self.rebuild()

    def _apply(self, rec: tuple[float, str, bool, float, int, int], sign: float) -> None:
        _, label, ok, w, idx, _ = rec
        bins = self.bins.get(label)
        if bins is None:
            bins = self.bins[label] = _Bins(self.nbins)
        bins.add(idx, w, not ok, sign)
        self.weight += sign * w
        if bins.count == 0:
            del self.bins[label]

    def rebuild(self) -> None:
        """Recompute the running sums from the records (bounds float drift)."""
        self.bins = {}
        self.weight = 0.0
        self.evictions = 0
        for rec in self.records:
            self._apply(rec, 1.0)

    def clear(self) -> None:
        self.records.clear()
        self.bins = {}
        self.weight = 0.0
        self.evictions = 0


class RiskController:
    """Sliding-window evidence and certified auto-accept thresholds.

    Feed it feedback with :meth:`observe` (scored *before* the model learned the example)
    and read the policy with :meth:`certificate`. See the module docstring for the method.

    Parameters
    ----------
    config : RiskConfig, optional
        Settings; defaults to ``RiskConfig()``.

    Examples
    --------
    >>> rc = RiskController()
    >>> rc.certificate().threshold_for("cat")
    inf
    >>> for i in range(400):
    ...     rc.observe(0.5 + 0.5 * i / 400, "cat", True)
    >>> cert = rc.certificate()
    >>> cert.threshold_for("cat") < 0.9, cert.precision_lower_bound > 0.95
    (True, True)
    >>> rc.reset(); rc.certificate().certified
    False
    """

    def __init__(self, config: RiskConfig | None = None) -> None:
        self.config = config if config is not None else RiskConfig()
        self._grid: list[float] = list(self.config.grid)
        nbins = len(self._grid) + 1
        sizes = [self.config.window]
        if self.config.recent_window is not None:
            sizes.append(self.config.recent_window)
        self._windows = [_Window(size, nbins) for size in sizes]
        # Stratum of each bin (bin i holds grid[i-1] <= c < grid[i]): equal-width strata
        # of [0, 1] by the bin's lower edge; None means plain Horvitz-Thompson weights.
        self._strata: NDArray[np.intp] | None = None
        if self.config.weighting == "stratified":
            lower = np.array([0.0, *self._grid])
            k = self.config.strata
            self._strata = np.clip(np.floor(lower * k + 1e-9), 0, k - 1).astype(np.intp)
        self._since = 0
        self._cached: Certificate = Certificate()

    # -- evidence -----------------------------------------------------------------------------

    def observe(
        self,
        confidence: float,
        predicted: str,
        correct: bool,
        weight: float = 1.0,
        at: int = 0,
    ) -> None:
        """Add one reviewed example. O(number of windows), no recomputation.

        Parameters
        ----------
        confidence : float
            Model confidence in ``predicted``, scored before learning the example.
        predicted : str
            Predicted label.
        correct : bool
            Whether the reviewer confirmed ``predicted``.
        weight : float
            Importance weight ``1 / P(example was sent to review)``: ``1`` for records
            below the threshold in force (all reviewed), ``1 / audit_rate`` for audits.
        at : int
            The record clock when it was observed (records labeled so far), so that
            :meth:`expire` can age evidence by records, not only by examples.

        Raises
        ------
        ValueError
            If ``confidence`` is not finite or ``weight`` is not finite and positive.
        """
        if not math.isfinite(confidence):
            raise ValueError(f"confidence must be finite, got {confidence!r}")
        if not (math.isfinite(weight) and weight > 0.0):
            raise ValueError(f"weight must be finite and > 0, got {weight!r}")
        c = float(confidence)
        rec = (c, str(predicted), bool(correct), float(weight), bisect_right(self._grid, c), at)
        for win in self._windows:
            win.add(rec)
        self._since += 1

    def expire(self, before: int) -> int:
        """Forget evidence observed before record ``before``; how many examples left."""
        dropped = max(win.expire(before) for win in self._windows)
        if dropped:
            self._since += dropped
        return dropped

    def reset(self) -> None:
        """Forget all evidence (e.g. after drift): nothing is certified until re-earned."""
        for win in self._windows:
            win.clear()
        self._since = 0
        self._cached = Certificate()

    def __len__(self) -> int:
        return len(self._windows[0].records)

    @property
    def evidence(self) -> float:
        """Summed importance weight in the (main) window."""
        return max(self._windows[0].weight, 0.0)

    # -- policy -------------------------------------------------------------------------------

    def certificate(self, fresh: bool = False) -> Certificate:
        """Current certified policy.

        Recomputed lazily: at most once every ``config.recompute_every`` observations
        (or at the next call with ``fresh=True``); otherwise the cached result is returned.
        """
        if self._since and (fresh or self._since >= self.config.recompute_every):
            self._cached = self._compute()
            self._since = 0
        return self._cached

    def certify(self, delta: float) -> Certificate:
        """The certified policy of the evidence now, tested at level ``delta`` (no cache).

        A caller that tests repeatedly must spend its error budget over the tests, e.g.
        with :class:`SpendingSchedule`.
        """
        self._since = 0
        self._cached = self._compute(delta)
        return self._cached

    def _compute(self, delta: float | None = None) -> Certificate:
        cfg = self.config
        delta = cfg.delta if delta is None else delta
        main = self._windows[0]
        if not main.records:
            return Certificate()
        families = 2 if cfg.mode == "both" else 1
        # Bonferroni over (window, policy family); only windows long enough to hold a
        # runnable test count (decided from the window size, never from correctness).
        # A recent window that still holds everything the main window holds is skipped.
        windows = [main] + [w for w in self._windows[1:] if len(w.records) < len(main.records)]
        active = [w for w in windows if self._runnable(w)] or windows[:1]
        alpha = delta / (families * len(active))
        best: tuple[float, Certificate] | None = None
        for win in active:
            options: list[tuple[float, Certificate]] = []
            if cfg.mode in ("global", "both"):
                options.append(self._global_policy(win, alpha))
            if cfg.mode in ("per_class", "both"):
                options.append(self._class_policy(win, alpha))
            for share, cert in options:
                # All tests hold simultaneously w.p. >= 1 - delta, so choosing the policy
                # with the larger estimated automation after the fact keeps the guarantee.
                if best is None or share > best[0]:
                    best = (share, cert)
        assert best is not None
        share, cert = best
        return Certificate(
            global_threshold=cert.global_threshold,
            class_thresholds=cert.class_thresholds,
            precision_lower_bound=cert.precision_lower_bound,
            evidence=self.evidence,
            examples=len(main.records),
            share=share if cert.certified else 0.0,
        )

    def _pool(self, bins: Sequence[_Bins]) -> _Pool:
        return _Pool.of(bins, self._strata)

    def testable(self, delta: float) -> bool:
        """Whether a test at level ``delta`` could certify anything at all: some threshold
        has enough evidence that zero errors would pass. Decided from the confidences and
        weights only, never from correctness, so skipping a test that is not testable
        spends nothing."""
        cfg = self.config
        main = self._windows[0]
        if not main.records:
            return False
        families = 2 if cfg.mode == "both" else 1
        level = delta / (families * len(self._windows) * cfg.starts)
        n0 = math.log(level) / math.log1p(-cfg.epsilon)
        pool = self._pool(list(main.bins.values()))
        return _start_index(pool.n_eff, max(cfg.min_evidence, n0)) >= 0

    def _runnable(self, win: _Window) -> bool:
        """Whether the window has enough evidence for any test to start (counts only)."""
        pool = self._pool(list(win.bins.values()))
        return bool(pool.n_eff[0] >= self.config.min_evidence)

    def _certify(self, pool: _Pool, alpha: float) -> tuple[float, float]:
        """Loosest threshold certified for one pool at level ``alpha`` (multi-start)."""
        cfg = self.config
        best_t, best_ucb = NO_THRESHOLD, 1.0
        level = alpha / cfg.starts
        # Below n0 even zero errors cannot pass; starting there would waste the sequence.
        n0 = math.log(level) / math.log1p(-cfg.epsilon)
        for i in range(cfg.starts):
            start = _start_index(pool.n_eff, max(cfg.min_evidence * 2.0**i, n0))
            if start < 0:
                continue
            j, bound = _sequence(pool.errors_eff, pool.n_eff, start, cfg.epsilon, level)
            if j >= 0 and self._grid[j] < best_t:
                best_t, best_ucb = self._grid[j], bound
        return best_t, best_ucb

    def _accepted_weight(self, pool: _Pool, threshold: float) -> float:
        if not math.isfinite(threshold):
            return 0.0
        j = bisect_right(self._grid, threshold) - 1
        return float(pool.w[j]) if j >= 0 else 0.0

    def _global_policy(self, win: _Window, alpha: float) -> tuple[float, Certificate]:
        pool = self._pool(list(win.bins.values()))
        t, ucb = self._certify(pool, alpha)
        cert = Certificate(
            global_threshold=t,
            precision_lower_bound=1.0 - ucb if math.isfinite(t) else 0.0,
        )
        return self._accepted_weight(pool, t) / max(win.weight, 1e-300), cert

    def _class_policy(self, win: _Window, alpha: float) -> tuple[float, Certificate]:
        cfg = self.config
        pools: dict[str, _Pool] = {}
        rest: list[_Bins] = []
        for label in sorted(win.bins):
            p = self._pool([win.bins[label]])
            if p.n_eff[0] >= cfg.min_class_evidence:
                pools[label] = p
            else:
                rest.append(win.bins[label])
        rest_pool = self._pool(rest) if rest else None
        # Bonferroni over the tests that can run at all (decided by confidences only).
        active = [p for p in pools.values() if p.n_eff[0] >= cfg.min_evidence]
        if rest_pool is not None and rest_pool.n_eff[0] >= cfg.min_evidence:
            active.append(rest_pool)
        if not active:
            return 0.0, Certificate()
        level = alpha / len(active)
        accepted = 0.0
        bounds: list[float] = []
        thresholds: dict[str, float] = {}
        for label, p in pools.items():
            t, ucb = self._certify(p, level)
            thresholds[label] = t
            accepted += self._accepted_weight(p, t)
            if math.isfinite(t):
                bounds.append(1.0 - ucb)
        g = NO_THRESHOLD
        if rest_pool is not None:
            g, ucb = self._certify(rest_pool, level)
            accepted += self._accepted_weight(rest_pool, g)
            if math.isfinite(g):
                bounds.append(1.0 - ucb)
        cert = Certificate(
            global_threshold=g,
            class_thresholds=thresholds,
            precision_lower_bound=min(bounds) if bounds else 0.0,
        )
        return accepted / max(win.weight, 1e-300), cert

    # -- persistence ----------------------------------------------------------------------------

    def to_state(self) -> dict[str, object]:
        """JSON-able snapshot: config and the evidence window (oldest first)."""
        return {
            "version": _STATE_VERSION,
            "config": self.config.to_dict(),
            "records": [[c, label, ok, w] for c, label, ok, w, _, _ in self._windows[0].records],
        }

    @classmethod
    def from_state(
        cls, state: Mapping[str, object], config: RiskConfig | None = None
    ) -> RiskController:
        """Rebuild a controller from :meth:`to_state` output.

        ``config`` overrides the stored configuration (the window is replayed into it).
        """
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported risk state version {state.get('version')!r}")
        if config is None:
            raw = state.get("config")
            config = RiskConfig.from_dict(raw) if isinstance(raw, Mapping) else RiskConfig()
        ctrl = cls(config)
        records = state.get("records", [])
        if not isinstance(records, list):
            raise ValueError("records must be a list")
        for rec in records:
            if not isinstance(rec, list | tuple) or len(rec) != 4:
                raise ValueError(f"bad risk record {rec!r}")
            c, label, ok, w = rec
            if not isinstance(label, str) or not isinstance(ok, bool):
                raise ValueError(f"bad risk record {rec!r}")
            ctrl.observe(_num(c), label, ok, _num(w))
        ctrl.certificate(fresh=True)
        return ctrl
