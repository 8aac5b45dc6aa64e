"""The learner's pure core: score each example before learning it, then learn.

Prequential ("test, then train") scoring gives an honest running accuracy:
every example is predicted by a model that has not seen it.

>>> from autolabel.classifier import OnlineClassifier
>>> from autolabel.messages import Feedback, FeedbackSource, Record
>>> from autolabel.settings import ModelSettings
>>> learner = Learner(OnlineClassifier(ModelSettings()), accuracy_window=10)
>>> fb = Feedback(id="1", record=Record(id="1", features={"x": 1.0}), label="a",
...               source=FeedbackSource.REVIEW)
>>> learner.learn(fb).correct is None  # nothing to score against yet
True
>>> learner.learn(fb).correct, learner.rolling_accuracy
(True, 1.0)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from autolabel.classifier import OnlineClassifier, Prediction
from autolabel.messages import Feedback


@dataclass(frozen=True, slots=True)
class LearnResult:
    """The prequential score of one example: ``correct`` is None when unscored."""

    prediction: Prediction | None
    correct: bool | None


class Learner:
    """Single writer of the model: predict, score, learn."""

    def __init__(self, classifier: OnlineClassifier, accuracy_window: int = 500) -> None:
        self.classifier = classifier
        self._recent: deque[bool] = deque(maxlen=accuracy_window)
        self._hits = 0

    @property
    def rolling_accuracy(self) -> float | None:
        """Prequential accuracy over the last ``accuracy_window`` scored examples."""
        return self._hits / len(self._recent) if self._recent else None

    def learn(self, feedback: Feedback) -> LearnResult:
        prediction = self.classifier.predict_one(feedback.record)
        correct = None if prediction is None else prediction.label == feedback.label
        if correct is not None:
            if len(self._recent) == self._recent.maxlen:
                self._hits -= self._recent[0]
            self._recent.append(correct)
            self._hits += correct
        self.classifier.learn(feedback.record, feedback.label)
        return LearnResult(prediction, correct)
