"""autolabel.trust.policy: what a labeler decides from an immutable view."""

from __future__ import annotations

import math

import pytest

from autolabel.core.messages import AcceptReason, ReviewReason
from autolabel.model.classifier import OnlineClassifier, Prediction
from autolabel.settings import ModelSettings
from autolabel.trust.policy import LabelerView, review_priority
from autolabel.trust.risk import Certificate

MODEL = OnlineClassifier(ModelSettings())
CERT = Certificate(global_threshold=0.8, precision_lower_bound=0.96)


def pred(confidence: float, second: float = 0.0, label: str = "a") -> Prediction:
    return Prediction(label, confidence, confidence - second, ((label, confidence), ("b", second)))


def certified(**changes: object) -> LabelerView:
    base: dict[str, object] = {
        "model": MODEL,
        "learned": 1000,
        "certificate": CERT,
        "audit_rate": 0.1,
        "cold_start_examples": 50,
    }
    return LabelerView(**{**base, **changes})  # type: ignore[arg-type]


def fixed(threshold: float = 0.9, cold: int = 0, learned: int = 1) -> LabelerView:
    return LabelerView(
        model=MODEL,
        learned=learned,
        mode="fixed",
        fixed_threshold=threshold,
        cold_start_examples=cold,
    )


def reasons(view: LabelerView, *predictions: Prediction | None, draw: float = 0.5) -> list[str]:
    return [d.reason.value for d in view.decide(list(predictions), [draw] * len(predictions))]


def test_no_prediction_is_cold_start_whatever_was_learned() -> None:
    assert reasons(fixed(learned=10**6), None) == ["cold_start"]
    assert reasons(certified(), None) == ["cold_start"]
    assert certified().decide([None], [0.5])[0].priority == 1.0


@pytest.mark.parametrize(("learned", "reason"), [(49, "cold_start"), (50, "confident")])
def test_cold_start_ends_at_exactly_the_configured_count(learned: int, reason: str) -> None:
    assert reasons(fixed(cold=50, learned=learned), pred(0.99)) == [reason]


@pytest.mark.parametrize(
    ("confidence", "accept"), [(0.9, True), (0.8999999, False), (1.0, True), (0.1, False)]
)
def test_fixed_accepts_at_or_above_the_threshold(confidence: float, accept: bool) -> None:
    decision = fixed().decide([pred(confidence)], [0.5])[0]
    assert decision.accept is accept
    assert decision.reason is (AcceptReason.CONFIDENT if accept else ReviewReason.UNCERTAIN)
    assert decision.threshold == 0.9 and decision.sample_weight == 1.0


def test_certified_needs_a_certificate_and_enough_examples() -> None:
    assert reasons(certified(certificate=Certificate()), pred(0.999)) == ["cold_start"]
    assert reasons(certified(learned=10), pred(0.999)) == ["cold_start"]
    assert reasons(certified(), pred(0.999)) == ["certified"]
    assert math.isinf(certified(certificate=Certificate()).decide([pred(0.9)], [0.5])[0].threshold)


def test_a_lapsed_certificate_is_uncertain_not_cold_start() -> None:
    lapsed = certified(certificate=Certificate(), certified_once=True)
    decision = lapsed.decide([pred(0.999)], [0.5])[0]
    assert decision.reason is ReviewReason.UNCERTAIN and math.isinf(decision.threshold)
    assert reasons(lapsed, None) == ["cold_start"]  # no model for this kind yet


def test_fallback_and_a_local_hold_send_everything_to_drift_review() -> None:
    assert reasons(certified(fallback=True), pred(0.999), pred(0.3)) == ["drift", "drift"]
    held = certified().decide([pred(0.999)], [0.5], hold=True)[0]
    assert held.reason is ReviewReason.DRIFT and not held.accept
    # young models are cold start, not drift, even under a hold
    assert reasons(certified(learned=3, fallback=True), pred(0.999)) == ["cold_start"]


def test_audits_take_the_draws_below_the_rate_with_their_weight() -> None:
    view = certified(audit_rate=0.1)
    draws = [0.0, 0.0999, 0.1, 0.5]
    decisions = view.decide([pred(0.95)] * 4, draws)
    assert [d.reason.value for d in decisions] == ["audit", "audit", "certified", "certified"]
    assert decisions[0].sample_weight == pytest.approx(10.0)
    assert decisions[0].threshold == decisions[2].threshold == 0.8


def test_draws_are_asked_only_for_records_that_would_be_accepted() -> None:
    asked: list[list[int]] = []

    def draws(positions: list[int]) -> list[float]:
        asked.append(list(positions))
        return [0.5] * len(positions)

    view = certified()
    view.decide([pred(0.95), pred(0.5), None, pred(0.85)], draws)  # type: ignore[arg-type]
    assert asked == [[0, 3]]


def test_per_class_thresholds_apply_to_the_predicted_label() -> None:
    cert = Certificate(
        global_threshold=0.9, class_thresholds={"b": 0.6, "c": math.inf}, precision_lower_bound=0.96
    )
    view = certified(certificate=cert)
    got = reasons(view, pred(0.7, label="b"), pred(0.7, label="a"), pred(0.99, label="c"))
    assert got == ["certified", "uncertain", "uncertain"]


def test_uncertain_reviews_put_close_calls_first() -> None:
    close, clear = fixed().decide([pred(0.51, 0.49), pred(0.85, 0.15)], [0.5, 0.5])
    assert close.priority > clear.priority
    assert close.priority == pytest.approx(0.98) and clear.priority == pytest.approx(0.3)


@pytest.mark.parametrize("margin", [-0.5, 0.0, 0.3, 1.0, 1.5])
def test_review_priority_stays_in_unit_interval(margin: float) -> None:
    assert 0.0 <= review_priority(Prediction("a", 0.5, margin, ())) <= 1.0


def test_accepting_says_whether_anything_can_be_accepted() -> None:
    assert certified().accepting
    assert not certified(fallback=True).accepting
    assert not certified(certificate=Certificate()).accepting
    assert fixed().accepting and not fixed(cold=5, learned=1).accepting
