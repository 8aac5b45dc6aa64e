"""The learner's pure core: score each example before learning it, then learn.

Prequential ("test, then train") scoring gives honest evidence: every example
is predicted by a model that has not seen it. The scores feed the rolling
accuracy and the policy's drift detectors; then the model learns.

A share of the feedback (the policy says which) is *held out*: kept out of
training in a bounded FIFO, and every few examples re-scored by the current
model so the policy certifies thresholds on out-of-sample scores of the model
that labels the next records (a learning model's confidence drifts, so scores
from its past versions would mislead). An example leaving the full holdout is
learned then: no label is wasted, only delayed.

During a drift fallback a fresh candidate model learns alongside and may
replace the current one (the policy decides). The service's learner agent and
``autolabel evaluate`` both call :meth:`Learner.learn`.

>>> from autolabel.core.messages import Feedback, FeedbackSource, Record
>>> from autolabel.trust.policy import ThresholdPolicy
>>> from autolabel.settings import ModelSettings
>>> learner = Learner(ModelSettings(), ThresholdPolicy(), accuracy_window=10)
>>> fb = Feedback(id="1", record=Record(id="1", features={"x": 1.0}), label="a",
...               source=FeedbackSource.REVIEW)
>>> learner.learn(fb).correct is None  # nothing to score against yet
True
>>> learner.learn(fb).correct, learner.rolling_accuracy
(True, 1.0)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from autolabel.core.messages import Feedback
from autolabel.model.classifier import OnlineClassifier
from autolabel.settings import ModelSettings
from autolabel.trust.drift import DriftEvent
from autolabel.trust.policy import Policy, Scored


@dataclass(frozen=True, slots=True)
class LearnResult:
    """The prequential score of one example, and what it changed."""

    scored: Scored
    drift_events: Sequence[DriftEvent] = ()
    promoted: bool = False

    @property
    def correct(self) -> bool | None:
        """``None`` when there was no model to score with yet."""
        return self.scored.correct


class Learner:
    """Single writer of the model and of the policy's evidence."""

    def __init__(
        self,
        model_settings: ModelSettings,
        policy: Policy,
        *,
        top_k: int = 3,
        accuracy_window: int = 500,
    ) -> None:
        self._model_settings = model_settings
        self._top_k = top_k
        self.policy = policy
        self.classifier = OnlineClassifier(model_settings, top_k)
        self.candidate: OnlineClassifier | None = None
        self.holdout: deque[Feedback] = deque()
        self._epoch = policy.evidence_epoch
        self._since_calibration = 0
        self._recent: deque[bool] = deque(maxlen=accuracy_window)
        self._hits = 0

    @property
    def rolling_accuracy(self) -> float | None:
        """Prequential accuracy over the last ``accuracy_window`` scored examples."""
        return self._hits / len(self._recent) if self._recent else None

    def learn(self, feedback: Feedback) -> LearnResult:
        scored = self._score(self.classifier, feedback)
        if scored.correct is not None:
            if len(self._recent) == self._recent.maxlen:
                self._hits -= self._recent[0]
            self._recent.append(scored.correct)
            self._hits += scored.correct
        challenger = self._score(self.candidate, feedback) if self.candidate else None
        events = self.policy.observe(scored, challenger)
        if self.policy.evidence_epoch != self._epoch:  # drift: pre-drift evidence is stale
            self._epoch = self.policy.evidence_epoch
            self.holdout.clear()
        if self.policy.wants_candidate and self.candidate is None:
            self.candidate = OnlineClassifier(self._model_settings, self._top_k)
        if self.policy.hold_out():
            self.holdout.append(feedback)
            if len(self.holdout) > self.policy.holdout_size:
                self._teach(self.holdout.popleft())
        else:
            self._teach(feedback)
        self._since_calibration += 1
        if self._since_calibration >= self.policy.calibrate_every:
            self.calibrate()
        return LearnResult(scored, tuple(events), self._settle_candidate())

    def calibrate(self) -> None:
        """Hand the policy the holdout, scored now by the current (and candidate) model."""
        self._since_calibration = 0
        current = [self._score(self.classifier, f) for f in self.holdout]
        candidate = (
            [self._score(self.candidate, f) for f in self.holdout] if self.candidate else None
        )
        self.policy.calibrate(current, candidate)

    def _score(self, model: OnlineClassifier | None, feedback: Feedback) -> Scored:
        prediction = model.predict_one(feedback.record) if model else None
        return Scored(prediction, feedback.label, feedback.source, feedback.sample_weight)

    def _teach(self, feedback: Feedback) -> None:
        self.classifier.learn(feedback.record, feedback.label)
        if self.candidate is not None:
            self.candidate.learn(feedback.record, feedback.label)

    def _settle_candidate(self) -> bool:
        if self.candidate is None:
            return False
        if self.policy.promote_candidate():
            self.candidate.version = self.classifier.version + 1
            self.classifier, self.candidate = self.candidate, None
            return True
        if not self.policy.wants_candidate:
            self.candidate = None
        return False
