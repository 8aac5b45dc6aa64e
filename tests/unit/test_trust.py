"""The trust policy: routing order, audits, drift fallback and model promotion."""

from __future__ import annotations

import math
import random

import pytest

from autolabel.core.messages import AcceptReason, FeedbackSource, ReviewReason
from autolabel.model.classifier import Prediction
from autolabel.settings import PolicySettings
from autolabel.trust.certified import TrustConfig, TrustPolicy, build_policy
from autolabel.trust.drift import DriftConfig
from autolabel.trust.policy import Scored
from autolabel.trust.risk import RiskConfig


def pred(label: str, confidence: float) -> Prediction:
    return Prediction(label, confidence, 2 * confidence - 1, ((label, confidence),))


def certify(policy: TrustPolicy, n: int = 800, rng: random.Random | None = None) -> None:
    """Evidence of a well-calibrated model: high confidence is almost always right."""
    rng = rng or random.Random(0)
    for _ in range(n):
        c = rng.uniform(0.5, 1.0)
        right = rng.random() > (1 - c) / 4  # better than its confidence says
        policy.observe(Scored(pred("a", c), "a" if right else "b", FeedbackSource.REVIEW))
    policy.calibrate([])


def test_cold_start_until_examples_and_certificate() -> None:
    policy = TrustPolicy(TrustConfig(cold_start_examples=30))
    sure = pred("a", 0.999)
    assert policy.decide(None, learned=100).reason is ReviewReason.COLD_START
    assert policy.decide(sure, learned=10).reason is ReviewReason.COLD_START
    # enough examples but nothing certified yet: still cold start, threshold infinite
    decision = policy.decide(sure, learned=100)
    assert decision.reason is ReviewReason.COLD_START and math.isinf(decision.threshold)


def test_certified_accepts_audits_at_rate_and_reviews_uncertain() -> None:
    policy = TrustPolicy(TrustConfig(cold_start_examples=0, audit_rate=0.1, seed=3))
    certify(policy)
    cert = policy.certificate
    assert cert.certified
    threshold = cert.threshold_for("a")
    assert 0.5 < threshold < 1.0

    decisions = [policy.decide(pred("a", 0.999), learned=1000) for _ in range(5000)]
    audits = [d for d in decisions if d.reason is ReviewReason.AUDIT]
    accepted = [d for d in decisions if d.accept]
    assert all(d.reason is AcceptReason.CERTIFIED for d in accepted)
    assert len(audits) + len(accepted) == 5000
    assert 0.08 < len(audits) / 5000 < 0.12  # audit_rate 0.1, binomial sd ~0.004
    assert all(d.sample_weight == pytest.approx(10.0) for d in audits)

    low = policy.decide(pred("a", max(threshold - 0.05, 0.5)), learned=1000)
    assert low.reason is ReviewReason.UNCERTAIN and not low.accept
    assert low.priority == pytest.approx(1 - (2 * max(threshold - 0.05, 0.5) - 1), abs=1e-6)


def test_audit_outcomes_are_importance_weighted() -> None:
    policy = TrustPolicy(TrustConfig(cold_start_examples=0, audit_rate=0.05))
    for i in range(40):
        correct = i % 4 != 0  # a quarter of audited labels wrong
        policy.observe(Scored(pred("a", 0.99), "a" if correct else "b", FeedbackSource.AUDIT, 20.0))
    assert policy.audit_error_rate == pytest.approx(0.25)


def drifting_policy() -> TrustPolicy:
    return TrustPolicy(
        TrustConfig(
            cold_start_examples=0,
            audit_rate=0.05,
            drift_audit_rate=0.25,
            boost_audits=10,
            drift=DriftConfig(error_warmup=50, audit_warmup=10),
            risk=RiskConfig(recent_window=None, min_evidence=50.0),
        )
    )


def test_drift_stops_acceptance_then_recertifies_and_promotes_candidate() -> None:
    rng = random.Random(1)
    policy = drifting_policy()
    certify(policy, 1500, rng)
    assert policy.certificate.certified and not policy.fallback

    # The concept flips: confident predictions in the accepted region are now wrong.
    events = []
    for _ in range(400):
        c = rng.uniform(0.9, 1.0)
        events += policy.observe(Scored(pred("a", c), "b", FeedbackSource.REVIEW))
        if policy.fallback:
            break
    assert events and policy.fallback
    assert policy.decide(pred("a", 0.999), learned=10_000).reason is ReviewReason.DRIFT
    assert not policy.certificate.certified
    assert policy.wants_candidate
    assert policy.status().fallback

    # Post-drift: the old model stays wrong, a fresh candidate is right when confident.
    for _ in range(3000):
        c = rng.uniform(0.5, 1.0)
        truth = "a" if rng.random() < c else "b"
        old = Scored(pred("b" if truth == "a" else "a", c), truth, FeedbackSource.REVIEW)
        new = Scored(pred("a", c), truth, FeedbackSource.REVIEW)
        policy.observe(old, new)
        policy.calibrate([])
        if not policy.fallback:
            break
    assert not policy.fallback, "never re-certified on post-drift evidence"
    assert policy.promote_candidate()  # the candidate scored better after the drift
    assert not policy.wants_candidate
    assert policy.certificate.certified
    assert policy.audit_rate == pytest.approx(0.25)  # raised after a drift
    for _ in range(10):
        policy.observe(Scored(pred("a", 0.99), "a", FeedbackSource.AUDIT, 4.0))
    assert policy.audit_rate == pytest.approx(0.05)  # back to normal after boost_audits


def test_build_policy_fixed_and_certified() -> None:
    fixed = build_policy(PolicySettings(mode="fixed", confidence_threshold=0.8))
    assert fixed.decide(pred("a", 0.85), learned=10**6).reason is AcceptReason.CONFIDENT
    certified = build_policy(PolicySettings(target_precision=0.9, delta=0.1))
    assert isinstance(certified, TrustPolicy)
    assert certified.config.risk.target_precision == 0.9
    assert certified.config.risk.delta == 0.1
