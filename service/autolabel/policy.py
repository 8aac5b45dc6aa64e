"""The acceptance policy: accept a predicted label, or route the record to review.

The labeler asks the policy about each prediction; the policy never touches
Kafka. :class:`ThresholdPolicy` is the fixed-threshold policy with cold start;
risk-controlled policies implement the same :class:`Policy` protocol.

>>> from autolabel.classifier import Prediction
>>> policy = ThresholdPolicy(threshold=0.9, cold_start_examples=10)
>>> sure = Prediction("cat", 0.97, 0.95, (("cat", 0.97),))
>>> policy.decide(sure, learned=100).reason
<AcceptReason.CONFIDENT: 'confident'>
>>> policy.decide(sure, learned=3).reason
<ReviewReason.COLD_START: 'cold_start'>
>>> policy.decide(Prediction("cat", 0.6, 0.2, ()), learned=100).reason
<ReviewReason.UNCERTAIN: 'uncertain'>
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from autolabel.classifier import Prediction
from autolabel.messages import AcceptReason, ReviewReason


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one record goes and why."""

    accept: bool
    reason: AcceptReason | ReviewReason
    threshold: float
    priority: float = 0.0  # review order: higher first
    sample_weight: float = 1.0  # records this review stands for (1 / audit rate for audits)


class Policy(Protocol):
    """Decides, per prediction, between auto-accepting and human review."""

    def decide(self, prediction: Prediction | None, learned: int) -> Decision:
        """``prediction`` is ``None`` when no model exists yet for the record's kind;
        ``learned`` is how many examples the model has learned."""
        ...


def review_priority(prediction: Prediction | None) -> float:
    """Most informative first: a small top-1/top-2 margin means a useful label.

    >>> review_priority(None), review_priority(Prediction("a", 0.5, 0.0, ()))
    (1.0, 1.0)
    >>> review_priority(Prediction("a", 0.9, 0.8, ()))
    0.2
    """
    if prediction is None:
        return 1.0
    return round(min(max(1.0 - prediction.margin, 0.0), 1.0), 6)


@dataclass(frozen=True, slots=True)
class ThresholdPolicy:
    """Accept when confidence reaches a fixed threshold, once past cold start."""

    threshold: float = 0.9
    cold_start_examples: int = 50

    def decide(self, prediction: Prediction | None, learned: int) -> Decision:
        if prediction is None or learned < self.cold_start_examples:
            return Decision(
                False, ReviewReason.COLD_START, self.threshold, review_priority(prediction)
            )
        if prediction.confidence >= self.threshold:
            return Decision(True, AcceptReason.CONFIDENT, self.threshold)
        return Decision(False, ReviewReason.UNCERTAIN, self.threshold, review_priority(prediction))
