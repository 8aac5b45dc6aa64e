"""The acceptance policy: accept a predicted label, or route the record to review.

The labeler asks the policy about each prediction; the policy never touches
Kafka. :class:`ThresholdPolicy` is the fixed-threshold policy with cold start;
risk-controlled policies implement the same :class:`Policy` protocol.

>>> from autolabel.model.classifier import Prediction
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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from autolabel.core.messages import AcceptReason, FeedbackSource, ReviewReason
from autolabel.model.classifier import Prediction
from autolabel.trust.drift import DriftEvent


class Decision(NamedTuple):
    """Where one record goes and why (a tuple: one is built per record)."""

    accept: bool
    reason: AcceptReason | ReviewReason
    threshold: float
    priority: float = 0.0  # review order: higher first
    sample_weight: float = 1.0  # records this review stands for (1 / audit rate for audits)


@dataclass(frozen=True, slots=True)
class Scored:
    """One feedback example scored by a model before learning it (prequential)."""

    prediction: Prediction | None
    label: str
    source: FeedbackSource
    sample_weight: float = 1.0

    @property
    def correct(self) -> bool | None:
        return None if self.prediction is None else self.prediction.label == self.label


@dataclass(frozen=True, slots=True)
class PolicyStatus:
    """What ops should see of a policy (exported as metrics)."""

    global_threshold: float
    class_threshold_min: float | None = None
    class_threshold_max: float | None = None
    certified_classes: int = 0
    precision_lower_bound: float | None = None
    audit_rate: float = 0.0
    audit_error_rate: float | None = None
    fallback: bool = False


class Policy(Protocol):
    """Decides, per prediction, between auto-accepting and human review.

    The labeler calls :meth:`decide` and :meth:`observe_confidences`. The learner
    feeds every feedback example, scored before learning, to :meth:`observe`; keeps
    the examples :meth:`hold_out` picks out of training (at most
    :attr:`holdout_size`) and every :attr:`calibrate_every` examples passes them,
    scored by the current model, to :meth:`calibrate`; and asks whether a fresh
    candidate model should train alongside (:attr:`wants_candidate`) and replace
    the current one (:meth:`promote_candidate`). When :attr:`evidence_epoch`
    changes, the holdout is stale (drift) and the learner drops it.
    """

    def decide(self, prediction: Prediction | None, learned: int) -> Decision:
        """``prediction`` is ``None`` when no model exists yet for the record's kind;
        ``learned`` is how many examples the model has learned."""
        ...

    def observe_confidences(self, confidences: Iterable[float]) -> Sequence[DriftEvent]: ...

    def observe(self, scored: Scored, candidate: Scored | None = None) -> Sequence[DriftEvent]: ...

    def calibrate(
        self, current: Sequence[Scored], candidate: Sequence[Scored] | None = None
    ) -> None: ...

    def hold_out(self) -> bool: ...

    @property
    def holdout_size(self) -> int: ...

    @property
    def calibrate_every(self) -> int: ...

    @property
    def evidence_epoch(self) -> int: ...

    @property
    def wants_candidate(self) -> bool: ...

    def promote_candidate(self) -> bool: ...

    def status(self) -> PolicyStatus: ...


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

    # A fixed threshold learns nothing from evidence and never falls back.
    def observe_confidences(self, confidences: Iterable[float]) -> Sequence[DriftEvent]:
        return ()

    def observe(self, scored: Scored, candidate: Scored | None = None) -> Sequence[DriftEvent]:
        return ()

    def calibrate(
        self, current: Sequence[Scored], candidate: Sequence[Scored] | None = None
    ) -> None:
        return None

    def hold_out(self) -> bool:
        return False

    holdout_size = 0
    calibrate_every = 1 << 30
    evidence_epoch = 0
    wants_candidate = False

    def promote_candidate(self) -> bool:
        return False

    def status(self) -> PolicyStatus:
        return PolicyStatus(global_threshold=self.threshold)
