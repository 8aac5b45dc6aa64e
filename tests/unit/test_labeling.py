"""autolabel.core.labeling.label_batch: one output per input, keyed by id, routed by the policy."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable

import pytest

from autolabel.core.labeling import Inbound, label_batch
from autolabel.core.messages import (
    AcceptReason,
    DeadLetter,
    DeadLetterReason,
    LabeledRecord,
    Record,
    ReviewReason,
    ReviewRequest,
)
from autolabel.model.classifier import OnlineClassifier, Prediction
from autolabel.settings import ModelSettings, TopicSettings
from autolabel.trust.policy import Decision, ThresholdPolicy

TOPICS = TopicSettings()
MODELS = {
    TOPICS.labels: LabeledRecord,
    TOPICS.review: ReviewRequest,
    TOPICS.dead_letter: DeadLetter,
}


def inbound(values: Iterable[bytes | None], keys: Iterable[bytes | None] | None = None) -> list:
    values = list(values)
    keys = list(keys) if keys is not None else [None] * len(values)
    return [
        Inbound("autolabel.records", i % 3, 100 + i, k, v)
        for i, (k, v) in enumerate(zip(keys, values, strict=True))
    ]


def record(i: int, x: float = 1.0) -> bytes:
    return json.dumps({"id": f"r{i}", "features": {"x": x}}).encode()


class FixedModel:
    """Predicts a label and confidence chosen per record id (the ``x`` feature)."""

    version = 7

    def learned(self, kind: str | None = None) -> int:
        return 1000

    def predict_one(self, r: Record) -> Prediction | None:
        assert r.features is not None
        c = float(r.features["x"])
        return Prediction("cat", c, 2 * c - 1, (("cat", c), ("dog", round(1 - c, 6))))


class RaisingModel(FixedModel):
    def predict_one(self, r: Record) -> Prediction | None:
        if r.id == "r1":
            raise RuntimeError("boom")
        return super().predict_one(r)


class RecordingPolicy(ThresholdPolicy):
    """The fixed policy, also recording what the labeler told it."""

    seen: list[float]

    def observe_confidences(self, confidences: Iterable[float]) -> tuple:
        object.__setattr__(self, "seen", [*getattr(self, "seen", []), *confidences])
        return ()


def decoded(outcome) -> list[tuple[str, bytes | None, object]]:
    return [(o.topic, o.key, MODELS[o.topic].model_validate_json(o.value)) for o in outcome.outputs]


def test_routes_by_the_policy_decision_one_output_per_input_keyed_by_id() -> None:
    batch = inbound([record(0, 0.95), record(1, 0.6), b"{oops", record(3, 0.99)], [b"k"] * 4)
    policy = ThresholdPolicy(threshold=0.9, cold_start_examples=10)
    outcome = label_batch(batch, FixedModel(), policy, TOPICS, max_message_bytes=10_000)

    out = decoded(outcome)
    assert [(topic, key) for topic, key, _ in out] == [
        (TOPICS.labels, b"r0"),
        (TOPICS.review, b"r1"),
        (TOPICS.dead_letter, b"k"),  # no id could be read: the input's own key
        (TOPICS.labels, b"r3"),
    ]
    label = out[0][2]
    assert (label.id, label.label, label.confidence, label.threshold, label.reason) == (
        "r0",
        "cat",
        0.95,
        0.9,
        AcceptReason.CONFIDENT,
    )
    assert label.model_version == 7
    review = out[1][2]
    assert review.reason is ReviewReason.UNCERTAIN and review.predicted_label == "cat"
    assert review.record == Record(id="r1", features={"x": 0.6})
    assert [p.label for p in review.probabilities] == ["cat", "dog"]
    assert review.priority == pytest.approx(0.8)  # 1 - margin(0.6 vs 0.4)
    letter = out[2][2]
    assert letter.reason is DeadLetterReason.INVALID_JSON and letter.stage == "labeler"
    assert (letter.source_partition, letter.source_offset) == (2, 102)

    assert outcome.accepted == Counter({"confident": 2})
    assert outcome.reviewed == Counter({"uncertain": 1})
    assert outcome.dead == Counter({"invalid_json": 1})
    assert outcome.confidences == [0.95, 0.6, 0.99]


def test_cold_start_reviews_everything_with_the_record_and_no_prediction() -> None:
    classifier = OnlineClassifier(ModelSettings())
    batch = inbound([record(i) for i in range(5)])
    policy = ThresholdPolicy(threshold=0.5, cold_start_examples=1)
    outcome = label_batch(batch, classifier, policy, TOPICS, max_message_bytes=10_000)

    out = decoded(outcome)
    assert [key for _, key, _ in out] == [f"r{i}".encode() for i in range(5)]
    for topic, _, review in out:
        assert topic == TOPICS.review
        assert review.reason is ReviewReason.COLD_START
        assert review.predicted_label is None and review.probabilities == []
        assert review.model_version == 0 and review.priority == 1.0
    assert outcome.confidences == []


def test_cold_start_holds_below_the_example_count_even_for_confident_predictions() -> None:
    batch = inbound([record(0, 0.99)])
    model = FixedModel()  # learned() == 1000
    below = label_batch(
        batch, model, ThresholdPolicy(0.9, cold_start_examples=1001), TOPICS, max_message_bytes=999
    )
    at = label_batch(
        batch, model, ThresholdPolicy(0.9, cold_start_examples=1000), TOPICS, max_message_bytes=999
    )
    assert below.reviewed == Counter({"cold_start": 1}) and not below.accepted
    assert at.accepted == Counter({"confident": 1})


def test_a_model_that_raises_dead_letters_that_record_only() -> None:
    batch = inbound([record(0, 0.95), record(1, 0.95), record(2, 0.95)])
    outcome = label_batch(
        batch, RaisingModel(), ThresholdPolicy(0.9, 0), TOPICS, max_message_bytes=10_000
    )
    out = decoded(outcome)
    assert [(topic, key) for topic, key, _ in out] == [
        (TOPICS.labels, b"r0"),
        (TOPICS.dead_letter, b"r1"),
        (TOPICS.labels, b"r2"),
    ]
    letter = out[1][2]
    assert letter.reason is DeadLetterReason.PROCESSING_ERROR
    assert letter.record_id == "r1" and "boom" in letter.error
    assert json.loads(letter.payload) == json.loads(record(1, 0.95))
    assert outcome.dead == Counter({"processing_error": 1})


def test_a_policy_that_raises_dead_letters_too() -> None:
    class Broken(ThresholdPolicy):
        def decide(self, prediction: Prediction | None, learned: int) -> Decision:
            raise ValueError("policy bug")

    outcome = label_batch(
        inbound([record(0)]), FixedModel(), Broken(), TOPICS, max_message_bytes=10_000
    )
    assert outcome.dead == Counter({"processing_error": 1})


def test_every_input_yields_exactly_one_output_whatever_it_is() -> None:
    values = [
        record(0, 0.95),
        None,
        b"",
        b"\xff",
        b"[]",
        json.dumps({"id": "r5", "features": {}}).encode(),
        record(6, 0.5),
        json.dumps({"id": "r7", "text": "x" * 500}).encode(),  # oversized
        record(8, 0.97),
    ]
    outcome = label_batch(
        inbound(values), FixedModel(), ThresholdPolicy(0.9, 0), TOPICS, max_message_bytes=300
    )
    assert len(outcome.outputs) == len(values)
    total = sum(outcome.accepted.values()) + sum(outcome.reviewed.values())
    assert total + sum(outcome.dead.values()) == len(values)
    dead = [MODELS[o.topic].model_validate_json(o.value) for o in outcome.outputs]
    offsets = [d.source_offset for d in dead if isinstance(d, DeadLetter)]
    assert offsets == [101, 102, 103, 104, 105, 107]


def test_the_policy_sees_the_batch_confidences() -> None:
    policy = RecordingPolicy(0.9, 0)
    label_batch(
        inbound([record(0, 0.95), b"bad", record(2, 0.7)]),
        FixedModel(),
        policy,
        TOPICS,
        max_message_bytes=10_000,
    )
    assert policy.seen == [0.95, 0.7]


def test_an_output_too_big_for_the_broker_is_dead_lettered_not_sent() -> None:
    """A record under the input limit whose review request (it echoes the record) would
    exceed the output limit goes to dead-letter, truncated, instead of failing the send."""
    big = json.dumps({"id": "big", "features": {"x": 0.5, "blob": "y" * 5000}}).encode()
    out = label_batch(
        inbound([big, record(1, 0.5)]),
        FixedModel(),  # type: ignore[arg-type]
        ThresholdPolicy(0.9, 0),
        TOPICS,
        max_message_bytes=10_000,
        max_output_bytes=4_000,
    )
    assert [o.topic for o in out.outputs] == [TOPICS.dead_letter, TOPICS.review]
    letter = DeadLetter.model_validate_json(out.outputs[0].value)
    assert letter.reason is DeadLetterReason.OVERSIZED and letter.record_id == "big"
    assert "review request would be" in letter.error and letter.payload_size == len(big)
    assert out.dead == Counter({"oversized": 1}) and out.reviewed == Counter({"uncertain": 1})
