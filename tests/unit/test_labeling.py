"""The labeler's core: one decision per input (core.labeling), one message per decision
(core.outputs), keyed by id; the local alarm tightens, never loosens."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import orjson
import pytest

from autolabel.core.labeling import Inbound, LabelerCore
from autolabel.core.messages import (
    AcceptReason,
    ConfidenceSignal,
    DeadLetter,
    DeadLetterReason,
    Feedback,
    LabeledRecord,
    Record,
    ReviewReason,
    ReviewRequest,
)
from autolabel.core.outputs import encode_batch
from autolabel.core.requests import RequestIssuer, admit
from autolabel.model.classifier import Prediction
from autolabel.review import answer
from autolabel.settings import TopicSettings
from autolabel.trust.policy import LabelerView
from autolabel.trust.risk import Certificate

TOPICS = TopicSettings()
MODELS = {
    TOPICS.labels: LabeledRecord,
    TOPICS.review: ReviewRequest,
    TOPICS.dead_letter: DeadLetter,
    TOPICS.signals: ConfidenceSignal,
}
ISSUER = RequestIssuer(b"s" * 32)


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
    """Predicts "cat" with the confidence given as the record's ``x`` feature."""

    def predict_one(self, r: Record) -> Prediction | None:
        assert r.features is not None
        c = float(r.features["x"])
        return Prediction("cat", c, 2 * c - 1, (("cat", c), ("dog", round(1 - c, 6))))

    def predict(self, records: Sequence[Record]) -> list[Prediction | None]:
        return [self.predict_one(r) for r in records]


class RaisingModel(FixedModel):
    def predict_one(self, r: Record) -> Prediction | None:
        if r.id == "r1":
            raise RuntimeError("boom")
        return super().predict_one(r)


def fixed_view(model: object = None, threshold: float = 0.9) -> LabelerView:
    return LabelerView(
        model=model or FixedModel(),  # type: ignore[arg-type]
        model_version=7,
        learned=1000,
        mode="fixed",
        fixed_threshold=threshold,
        cold_start_examples=10,
    )


def certified_view(threshold: float = 0.8, audit_rate: float = 0.05, epoch: int = 0) -> LabelerView:
    return LabelerView(
        model=FixedModel(),  # type: ignore[arg-type]
        model_version=9,
        learned=1000,
        epoch=epoch,
        certificate=Certificate(global_threshold=threshold, precision_lower_bound=0.96),
        audit_rate=audit_rate,
    )


def run(view: LabelerView, values: list, *, max_bytes: int = 10_000, out_bytes: int = 10**6,
        keys: list | None = None):  # fmt: skip
    core = LabelerCore(ISSUER, view)
    routed = core.route(inbound(values, keys), max_message_bytes=max_bytes)
    outputs, sent = encode_batch(routed, ISSUER, TOPICS, worker="w1", max_output_bytes=out_bytes)
    return outputs, sent


def decoded(outputs) -> list[tuple[str, bytes | None, object]]:
    return [(o.topic, o.key, MODELS[o.topic].model_validate_json(o.value)) for o in outputs]


def test_routes_by_the_decision_one_output_per_input_keyed_by_id() -> None:
    values = [record(0, 0.95), record(1, 0.6), b"{oops", record(3, 0.99)]
    outputs, sent = run(fixed_view(), values, keys=[b"k"] * 4)
    out = decoded(outputs)
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
    assert ISSUER.verify(review.request_id) is not None  # signed by this service
    letter = out[2][2]
    assert letter.reason is DeadLetterReason.INVALID_JSON and letter.stage == "labeler"
    assert (letter.source_partition, letter.source_offset) == (2, 102)
    accepted, reviewed, dead = sent.tally()
    assert accepted == Counter({"confident": 2}) and reviewed == Counter({"uncertain": 1})
    assert dead == Counter({"invalid_json": 1})


@pytest.mark.parametrize("view", [fixed_view(), certified_view(), certified_view(audit_rate=0.5)])
def test_labels_are_the_json_of_their_fields_byte_for_byte(view: LabelerView) -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    values = [record(i, x) for i, x in enumerate([0.95, 0.99, 0.5, 0.97, 1.0, 0.9])]
    routed = LabelerCore(ISSUER, view).route(inbound(values), max_message_bytes=10_000)
    outputs, sent = encode_batch(routed, ISSUER, TOPICS, worker="w", max_output_bytes=10**6, at=at)
    labels = 0
    for output, item in zip(outputs, sent.items, strict=False):
        if output.topic != TOPICS.labels:
            continue
        assert item.prediction is not None and item.decision is not None
        labels += 1
        assert output.value == orjson.dumps(
            {
                "schema_version": 1,
                "id": json.loads(item.msg.value)["id"],
                "label": item.prediction.label,
                "confidence": item.prediction.confidence,
                "threshold": item.decision.threshold,
                "reason": item.decision.reason.value,
                "model_version": view.model_version,
                "labeled_at": at,
            }
        )
    assert labels >= 3


def test_cold_start_reviews_everything_with_the_record_and_no_prediction() -> None:
    view = LabelerView(model=None, learned=0)
    outputs, _ = run(view, [record(i) for i in range(5)])
    out = decoded(outputs)
    assert [t for t, _, _ in out] == [TOPICS.review] * 5
    for _, _, request in out:
        assert request.reason is ReviewReason.COLD_START and request.predicted_label is None
        assert request.probabilities == [] and request.priority == 1.0


def test_a_model_that_raises_dead_letters_that_record_only() -> None:
    outputs, _ = run(fixed_view(RaisingModel()), [record(0, 0.95), record(1, 0.95)])
    topics = [o.topic for o in outputs]
    assert topics == [TOPICS.labels, TOPICS.dead_letter]
    letter = DeadLetter.model_validate_json(outputs[1].value)
    assert letter.reason is DeadLetterReason.PROCESSING_ERROR and "boom" in letter.error
    assert letter.record_id == "r1"


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
    outputs, sent = run(fixed_view(), values, max_bytes=300)
    records_out = [o for o in outputs if o.topic != TOPICS.signals]
    assert len(records_out) == len(values)
    accepted, reviewed, dead = sent.tally()
    assert sum(accepted.values()) + sum(reviewed.values()) + sum(dead.values()) == len(values)
    letters = [d for _, _, d in decoded(records_out) if isinstance(d, DeadLetter)]
    assert [d.source_offset for d in letters] == [101, 102, 103, 104, 105, 107]


def test_an_output_too_big_for_the_broker_is_dead_lettered_not_sent() -> None:
    """A record under the input limit whose review request (it echoes the record) would
    exceed the output limit goes to dead-letter instead of failing the send."""
    big = json.dumps({"id": "big", "features": {"x": 0.5, "blob": "y" * 5000}}).encode()
    outputs, sent = run(fixed_view(), [big, record(1, 0.5)], out_bytes=4_000)
    assert [o.topic for o in outputs] == [TOPICS.dead_letter, TOPICS.review]
    letter = DeadLetter.model_validate_json(outputs[0].value)
    assert letter.reason is DeadLetterReason.OVERSIZED and letter.record_id == "big"
    assert "review request would be" in letter.error and letter.payload_size == len(big)
    _, reviewed, dead = sent.tally()
    assert dead == Counter({"oversized": 1}) and reviewed == Counter({"uncertain": 1})


def test_audits_are_drawn_from_the_record_id_so_a_redelivered_batch_routes_alike() -> None:
    values = [record(i, 0.95) for i in range(400)]
    first, _ = run(certified_view(audit_rate=0.2), values)
    second, _ = run(certified_view(audit_rate=0.2), values)
    routes = [(o.topic, o.key) for o in first]
    assert routes == [(o.topic, o.key) for o in second]
    audits = [d for t, _, d in decoded(first) if t == TOPICS.review]
    assert 40 < len(audits) < 120  # ~80 expected at rate 0.2
    assert all(a.reason is ReviewReason.AUDIT and a.sample_weight == 5.0 for a in audits)


def test_an_answer_built_from_a_review_request_is_admitted_with_its_weight() -> None:
    outputs, _ = run(certified_view(audit_rate=0.5), [record(i, 0.95) for i in range(20)])
    requests = [d for t, _, d in decoded(outputs) if t == TOPICS.review]
    assert requests
    for request in requests:
        wire = Feedback.model_validate_json(answer(request, "dog", "ada").model_dump_json())
        admitted = admit(wire, ISSUER)
        assert not hasattr(admitted, "reason"), admitted
        assert admitted.source.value == "audit" and admitted.weight == pytest.approx(2.0)


def test_each_batch_tells_the_learner_its_confidences() -> None:
    values = [record(i, 0.9) for i in range(20)]
    outputs, _ = run(fixed_view(), values)
    signal = ConfidenceSignal.model_validate_json(outputs[-1].value)
    assert outputs[-1].topic == TOPICS.signals and outputs[-1].key == b"w1"
    assert signal.chunk_means == [pytest.approx(0.9)] * 2  # 16 of 20 in chunks of 8
    assert signal.model_version == 7 and not signal.alarm and signal.records == 20


def test_a_local_alarm_holds_acceptance_until_a_later_epoch() -> None:
    core = LabelerCore(ISSUER, certified_view(threshold=0.5, audit_rate=0.01))
    reasons: list[str] = []
    alarms = 0
    for i in range(0, 1200, 40):
        x = 0.97 if i < 600 else 0.55  # confidence falls: inputs unlike anything learned
        routed = core.route(
            inbound([record(j, x) for j in range(i, i + 40)]), max_message_bytes=1000
        )
        alarms += routed.alarm
        reasons += [it.decision.reason.value for it in routed.items if it.decision]
    assert core.hold and alarms == 1  # raised once, sent once
    assert reasons[-1] == "drift"
    core.swap(certified_view(threshold=0.5, audit_rate=0.01))  # same epoch: still held
    assert core.hold
    core.swap(certified_view(threshold=0.5, audit_rate=0.01, epoch=1))  # the learner answered
    assert not core.hold
    routed = core.route(inbound([record(9999, 0.97)]), max_message_bytes=1000)
    assert routed.items[0].decision.accept


def test_an_undelivered_alarm_is_sent_again() -> None:
    core = LabelerCore(ISSUER, certified_view(threshold=0.5))
    for i in range(0, 1200, 40):
        x = 0.97 if i < 600 else 0.55
        routed = core.route(
            inbound([record(j, x) for j in range(i, i + 40)]), max_message_bytes=1000
        )
        if routed.alarm:
            break
    assert routed.alarm
    core.unsent(routed)
    assert core.route(inbound([record(5000, 0.5)]), max_message_bytes=1000).alarm


def test_the_signal_counts_every_record_routed_since_the_last_one() -> None:
    core = LabelerCore(ISSUER, fixed_view())
    batches = [core.route(inbound([record(i, 0.9)] * 3), max_message_bytes=1000) for i in range(3)]
    assert [b.records for b in batches] == [0, 0, 9]  # the first chunk of 8 fills in batch 3
    core.unsent(batches[2])  # not delivered: routed again, its own 3 count again
    again = core.route(inbound([record(9, 0.9)] * 8), max_message_bytes=1000)
    assert again.records == 6 + 8
