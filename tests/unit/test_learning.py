"""autolabel.trust.learning: prequential scoring (predict, then learn) with the fixed policy."""

from __future__ import annotations

from autolabel.core.messages import Feedback, FeedbackSource, Record
from autolabel.settings import ModelSettings
from autolabel.trust.learning import Learner
from autolabel.trust.policy import ThresholdPolicy


def fb(i: int, x: float, label: str, source: FeedbackSource = FeedbackSource.REVIEW) -> Feedback:
    return Feedback(
        id=f"r{i}", record=Record(id=f"r{i}", features={"x": x}), label=label, source=source
    )


def test_each_example_is_scored_before_it_is_learned() -> None:
    learner = Learner(ModelSettings(), ThresholdPolicy())
    first = learner.learn(fb(0, 1.0, "a"))
    assert first.correct is None and first.scored.prediction is None  # no model yet
    assert learner.classifier.learned() == 1 and learner.classifier.version == 1
    # a label never seen before cannot have been predicted: scored wrong, then learned
    second = learner.learn(fb(1, -1.0, "b"))
    assert second.correct is False and second.scored.prediction.label == "a"
    assert learner.classifier.learned() == 2
    assert learner.rolling_accuracy == 0.0  # the unscored first example does not count


def test_rolling_accuracy_covers_only_the_window() -> None:
    learner = Learner(ModelSettings(), ThresholdPolicy(), accuracy_window=3)
    learner.learn(fb(0, 1.0, "a"))
    learner.learn(fb(1, -1.0, "b"))  # wrong (unknown label)
    assert learner.rolling_accuracy == 0.0
    for i in range(2, 40):  # a separable stream: the model soon gets every one right
        learner.learn(fb(i, 1.0 if i % 2 else -1.0, "a" if i % 2 else "b"))
    assert learner.rolling_accuracy == 1.0  # the early mistake has left the window


def test_each_kind_gets_its_own_model_and_all_are_counted() -> None:
    learner = Learner(ModelSettings(), ThresholdPolicy())
    learner.learn(fb(0, 1.0, "a"))
    text = Feedback(
        id="t", record=Record(id="t", text="hello world"), label="greet", source=FeedbackSource.SEED
    )
    result = learner.learn(text)
    assert result.correct is None  # no text model existed yet, whatever the tabular one knows
    assert learner.classifier.learned("features") == 1
    assert learner.classifier.learned("text") == 1
    assert learner.classifier.learned() == 2
    assert set(learner.classifier.kinds()) == {"features", "text"}
