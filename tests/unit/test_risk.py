"""Unit tests for autolabel.trust.risk (certified auto-accept thresholds)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolabel.trust.risk import (
    Certificate,
    RiskConfig,
    RiskController,
    clopper_pearson_upper,
    fixed_sequence_threshold,
    oracle_threshold,
    weighted_error_bound,
)

# --------------------------------------------------------------------------------------------
# Clopper-Pearson
# --------------------------------------------------------------------------------------------


@given(n=st.integers(min_value=1, max_value=5000), alpha=st.floats(0.001, 0.5))
def test_cp_zero_errors_closed_form(n: int, alpha: float) -> None:
    assert clopper_pearson_upper(0, n, alpha) == pytest.approx(1 - alpha ** (1 / n), rel=1e-9)


def test_cp_known_values() -> None:
    # Textbook one-sided 95% bounds.
    assert clopper_pearson_upper(1, 100, 0.05) == pytest.approx(0.0466, abs=1e-4)
    assert clopper_pearson_upper(5, 100, 0.05) == pytest.approx(0.1023, abs=1e-4)
    assert clopper_pearson_upper(0, 0, 0.05) == 1.0
    assert clopper_pearson_upper(7, 7, 0.05) == 1.0


@given(
    k=st.floats(0, 50),
    extra=st.floats(0.5, 500),
    alpha=st.floats(0.001, 0.5),
)
def test_cp_fractional_counts_are_monotone(k: float, extra: float, alpha: float) -> None:
    n = k + extra
    u = clopper_pearson_upper(k, n, alpha)
    assert k / n <= u <= 1.0
    assert clopper_pearson_upper(k + 0.25, n, alpha) >= u  # more errors, higher bound
    assert clopper_pearson_upper(k, n + 10, alpha) <= u  # more trials, tighter
    assert clopper_pearson_upper(k, n, alpha / 2) >= u  # more confidence, wider


def test_cp_rejects_bad_alpha() -> None:
    with pytest.raises(ValueError):
        clopper_pearson_upper(1, 10, 0.0)


def test_weighted_bound_reduces_to_cp_for_unit_weights() -> None:
    assert weighted_error_bound(3.0, 200.0, 200.0, 0.05) == clopper_pearson_upper(3, 200, 0.05)


def test_fixed_sequence_stops_at_first_failure() -> None:
    grid = [0.5, 0.6, 0.7, 0.8, 0.9]
    n = [500, 400, 300, 200, 100]
    errors = [0, 40, 0, 0, 0]  # 0.6 fails, so 0.5 is never reached
    t, ucb = fixed_sequence_threshold(grid, errors, n, 0.05, 0.05, 100)
    assert t == 0.7
    assert ucb <= 0.05


# --------------------------------------------------------------------------------------------
# Oracle
# --------------------------------------------------------------------------------------------


def test_oracle_threshold() -> None:
    conf = [0.99, 0.9, 0.8, 0.7, 0.6, 0.5]
    ok = [False, True, True, True, True, False]
    assert oracle_threshold(conf, ok, 0.75) == 0.6  # 4/5 correct at >= 0.6
    assert oracle_threshold(conf, ok, 0.99) == math.inf
    assert oracle_threshold([], [], 0.9) == math.inf
    # ties are all included: at 0.8 both tied examples count
    assert oracle_threshold([0.9, 0.8, 0.8], [True, True, False], 0.6) == 0.8
    assert oracle_threshold([0.9, 0.8, 0.8], [True, True, False], 0.7) == 0.9


# --------------------------------------------------------------------------------------------
# Controller behaviour
# --------------------------------------------------------------------------------------------


def _scores(rng: np.random.Generator, n: int) -> np.ndarray:
    """Confidences in [0.5, 1] with most mass near 1 (like a decent classifier)."""
    return 1.0 - 0.5 * rng.random(n) ** 3


def _feed(rc: RiskController, n: int, label: str = "a", seed: int = 0) -> None:
    """Calibrated examples: P(correct | c) = c."""
    rng = np.random.default_rng(seed)
    for c in _scores(rng, n):
        rc.observe(float(c), label, bool(rng.random() < c))


def test_nothing_certified_without_evidence() -> None:
    rc = RiskController()
    assert not rc.certificate().certified
    for _ in range(50):
        rc.observe(0.99, "a", True)
    cert = rc.certificate(fresh=True)
    assert not cert.certified
    assert cert.threshold_for("a") == math.inf
    assert cert.precision_lower_bound == 0.0
    assert not cert.accepts(1.0, "a")


def test_certifies_with_enough_clean_evidence() -> None:
    rc = RiskController(RiskConfig(window=3000))
    _feed(rc, 3000)
    cert = rc.certificate(fresh=True)
    assert cert.certified
    assert _true_precision(CALIBRATED, cert.global_threshold) >= 0.95
    assert cert.global_threshold < 0.95
    assert cert.precision_lower_bound >= 0.95
    assert cert.examples == 3000 and cert.evidence == pytest.approx(3000.0)


def test_per_class_thresholds_only_for_classes_with_evidence() -> None:
    cfg = RiskConfig(window=5000, mode="per_class", min_class_evidence=500, min_evidence=100)
    rc = RiskController(cfg)
    _feed(rc, 2500, "big", seed=1)
    _feed(rc, 150, "small", seed=2)
    _feed(rc, 150, "tiny", seed=3)
    cert = rc.certificate(fresh=True)
    assert set(cert.class_thresholds) == {"big"}
    assert math.isfinite(cert.class_thresholds["big"])
    # small classes share the pooled "rest" threshold
    assert cert.threshold_for("small") == cert.global_threshold
    assert cert.threshold_for("tiny") == cert.global_threshold
    assert cert.threshold_for("never-seen") == cert.global_threshold


def test_bad_class_gets_no_threshold_of_its_own() -> None:
    cfg = RiskConfig(window=5000, mode="per_class", min_class_evidence=300, min_evidence=100)
    rc = RiskController(cfg)
    _feed(rc, 2000, "good", seed=1)
    rng = np.random.default_rng(5)
    for c in rng.uniform(0.5, 1.0, 1000):
        rc.observe(float(c), "bad", bool(rng.random() < 0.7))  # 30% wrong everywhere
    cert = rc.certificate(fresh=True)
    assert math.isfinite(cert.threshold_for("good"))
    assert cert.threshold_for("bad") == math.inf


def test_reset_clears() -> None:
    rc = RiskController(RiskConfig(window=3000))
    _feed(rc, 3000)
    assert rc.certificate(fresh=True).certified
    rc.reset()
    assert len(rc) == 0 and rc.evidence == 0.0
    assert not rc.certificate().certified
    _feed(rc, 50)
    assert not rc.certificate(fresh=True).certified


def test_window_forgets() -> None:
    rc = RiskController(RiskConfig(window=500))
    for _ in range(500):
        rc.observe(0.95, "a", False)
    assert not rc.certificate(fresh=True).certified
    for _ in range(500):
        rc.observe(0.95, "a", True)
    assert len(rc) == 500
    assert rc.certificate(fresh=True).global_threshold <= 0.95


def test_lazy_recompute() -> None:
    rc = RiskController(RiskConfig(recompute_every=10))
    _feed(rc, 1000)
    first = rc.certificate()
    assert rc.certificate() is first  # nothing new: cached
    rc.observe(0.9, "a", True)
    assert rc.certificate() is first  # fewer than recompute_every new observations
    assert rc.certificate(fresh=True) is not first


def test_observe_rejects_garbage() -> None:
    rc = RiskController()
    with pytest.raises(ValueError):
        rc.observe(float("nan"), "a", True)
    with pytest.raises(ValueError):
        rc.observe(0.9, "a", True, weight=0.0)
    with pytest.raises(ValueError):
        rc.observe(0.9, "a", True, weight=float("inf"))


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        RiskConfig(target_precision=1.0)
    with pytest.raises(ValueError):
        RiskConfig(grid=(0.9, 0.5))
    with pytest.raises(ValueError):
        RiskConfig(window=100, recent_window=200)


@settings(max_examples=25, deadline=None)
@given(
    records=st.lists(
        st.tuples(
            st.floats(0.0, 1.0),
            st.sampled_from(["a", "b", "c"]),
            st.booleans(),
            st.sampled_from([1.0, 10.0, 20.0]),
        ),
        max_size=300,
    )
)
def test_state_round_trip(records: list[tuple[float, str, bool, float]]) -> None:
    cfg = RiskConfig(window=200, recent_window=50, mode="both", min_evidence=20)
    rc = RiskController(cfg)
    for c, label, ok, w in records:
        rc.observe(c, label, ok, w)
    state = json.loads(json.dumps(rc.to_state()))
    back = RiskController.from_state(state)
    assert back.config == cfg
    assert back.to_state() == rc.to_state()
    assert back.certificate(fresh=True) == rc.certificate(fresh=True)


def test_from_state_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        RiskController.from_state({"version": 99, "records": []})
    with pytest.raises(ValueError):
        RiskController.from_state({"version": 1, "records": [[0.5, "a", "yes", 1.0]]})


def test_certificate_threshold_for() -> None:
    cert = Certificate(global_threshold=0.9, class_thresholds={"a": 0.7, "b": math.inf})
    assert cert.threshold_for("a") == 0.7
    assert cert.threshold_for("b") == math.inf
    assert cert.threshold_for("z") == 0.9
    assert cert.accepts(0.8, "a") and not cert.accepts(0.8, "z")


# --------------------------------------------------------------------------------------------
# Repeated-trial validity: P(certified threshold has true precision < target) <= delta
# --------------------------------------------------------------------------------------------

TRIALS = 200
DELTA = 0.05
TARGET = 0.95
# Allowed violations: delta * trials plus ~2.5 binomial standard deviations.
MAX_VIOLATIONS = int(DELTA * TRIALS + 2.5 * math.sqrt(TRIALS * DELTA * (1 - DELTA)))


_reference_scores = _scores(np.random.default_rng(12345), 2_000_000)


def _true_precision(p_correct: Callable[[np.ndarray], np.ndarray], t: float) -> float:
    """Precision among c >= t under the generating process (large reference sample)."""
    if not math.isfinite(t):
        return 1.0
    sel = _reference_scores[_reference_scores >= t]
    return float(np.mean(p_correct(sel))) if sel.size else 1.0


CALIBRATED: Callable[[np.ndarray], np.ndarray] = lambda c: c  # noqa: E731
# Over-confident: actual accuracy c**2 (0.90 at c = 0.95).
OVERCONFIDENT: Callable[[np.ndarray], np.ndarray] = lambda c: c**2  # noqa: E731


@pytest.mark.parametrize(
    ("name", "p_correct"), [("calibrated", CALIBRATED), ("overconfident", OVERCONFIDENT)]
)
def test_validity_unweighted(name: str, p_correct: Callable[[np.ndarray], np.ndarray]) -> None:
    rng = np.random.default_rng(20240601)
    cfg = RiskConfig(target_precision=TARGET, delta=DELTA, window=600, min_evidence=100)
    violations = certified = 0
    for _ in range(TRIALS):
        c = _scores(rng, 600)
        ok = rng.random(600) < p_correct(c)
        rc = RiskController(cfg)
        for ci, oki in zip(c.tolist(), ok.tolist(), strict=True):
            rc.observe(ci, "x", oki)
        t = rc.certificate(fresh=True).global_threshold
        certified += math.isfinite(t)
        violations += _true_precision(p_correct, t) < TARGET
    assert certified > TRIALS // 2, f"{name}: the test has no power ({certified} certified)"
    assert violations <= MAX_VIOLATIONS, f"{name}: {violations}/{TRIALS} violations"


@pytest.mark.parametrize("weighting", ["stratified", "horvitz_thompson"])
def test_validity_with_weighted_audits(weighting: str) -> None:
    """A threshold t_c is in force: above it only a 10% audit sample is reviewed (w = 10)."""
    rng = np.random.default_rng(7)
    audit_rate, t_c, n = 0.1, 0.95, 2000
    cfg = RiskConfig(
        target_precision=TARGET,
        delta=DELTA,
        window=3000,
        min_evidence=60,
        weighting=weighting,  # type: ignore[arg-type]
    )
    violations = certified = 0
    for _ in range(TRIALS):
        c = _scores(rng, n)
        ok = rng.random(n) < OVERCONFIDENT(c)
        audited = rng.random(n) < audit_rate
        keep = (c < t_c) | audited
        rc = RiskController(cfg)
        for ci, oki in zip(c[keep].tolist(), ok[keep].tolist(), strict=True):
            rc.observe(ci, "x", oki, 1.0 / audit_rate if ci >= t_c else 1.0)
        t = rc.certificate(fresh=True).global_threshold
        certified += math.isfinite(t)
        violations += _true_precision(OVERCONFIDENT, t) < TARGET
    assert certified > TRIALS // 2, f"no power ({certified} certified)"
    assert violations <= MAX_VIOLATIONS, f"{violations}/{TRIALS} violations"
