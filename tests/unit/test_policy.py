"""autolabel.trust.policy: the fixed-threshold policy's boundaries and review priority."""

from __future__ import annotations

import pytest

from autolabel.core.messages import AcceptReason, ReviewReason
from autolabel.model.classifier import Prediction
from autolabel.settings import PolicySettings
from autolabel.trust.certified import TrustPolicy, build_policy
from autolabel.trust.policy import ThresholdPolicy, review_priority


def pred(confidence: float, second: float = 0.0) -> Prediction:
    return Prediction("a", confidence, confidence - second, (("a", confidence), ("b", second)))


def test_no_model_is_cold_start_whatever_was_learned() -> None:
    decision = ThresholdPolicy(0.9, cold_start_examples=0).decide(None, learned=10**6)
    assert not decision.accept and decision.reason is ReviewReason.COLD_START
    assert decision.priority == 1.0


@pytest.mark.parametrize(("learned", "reason"), [(49, "cold_start"), (50, "confident")])
def test_cold_start_ends_at_exactly_the_configured_count(learned: int, reason: str) -> None:
    decision = ThresholdPolicy(0.9, cold_start_examples=50).decide(pred(0.99), learned)
    assert decision.reason.value == reason


@pytest.mark.parametrize(
    ("confidence", "accept"), [(0.9, True), (0.8999999, False), (1.0, True), (0.1, False)]
)
def test_accepts_at_or_above_the_threshold(confidence: float, accept: bool) -> None:
    decision = ThresholdPolicy(0.9, 0).decide(pred(confidence), learned=1)
    assert decision.accept is accept
    assert decision.reason is (AcceptReason.CONFIDENT if accept else ReviewReason.UNCERTAIN)
    assert decision.threshold == 0.9
    assert decision.sample_weight == 1.0


def test_uncertain_reviews_put_close_calls_first() -> None:
    policy = ThresholdPolicy(0.9, 0)
    close = policy.decide(pred(0.51, 0.49), learned=1)
    clear = policy.decide(pred(0.85, 0.15), learned=1)
    assert close.priority > clear.priority
    assert close.priority == pytest.approx(0.98) and clear.priority == pytest.approx(0.3)


@pytest.mark.parametrize("margin", [-0.5, 0.0, 0.3, 1.0, 1.5])
def test_review_priority_stays_in_unit_interval(margin: float) -> None:
    assert 0.0 <= review_priority(Prediction("a", 0.5, margin, ())) <= 1.0


def test_settings_choose_the_policy() -> None:
    fixed = build_policy(
        PolicySettings(mode="fixed", confidence_threshold=0.8, cold_start_examples=3)
    )
    assert fixed == ThresholdPolicy(0.8, 3)
    assert isinstance(build_policy(PolicySettings()), TrustPolicy)  # certified by default
