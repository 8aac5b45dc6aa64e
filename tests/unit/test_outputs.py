"""The labeler's output codec (core.outputs) writes labels and review requests from
pre-serialised pieces: every output must be, byte for byte, what ``orjson.dumps`` makes
of the message's fields (the form the pydantic models read), for any record, prediction
and decision, and the batch's tallies must count what was sent."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from autolabel.core.labeling import Inbound, Routed, RoutedBatch
from autolabel.core.messages import (
    AcceptReason,
    LabeledRecord,
    PlainRecord,
    ReviewReason,
    ReviewRequest,
)
from autolabel.core.outputs import encode_batch
from autolabel.core.requests import RequestIssuer
from autolabel.model.classifier import Prediction
from autolabel.settings import TopicSettings
from autolabel.trust.policy import Decision, LabelerView

TOPICS = TopicSettings()
ISSUER = RequestIssuer(b"o" * 32)

texts = st.text(min_size=1, max_size=12)  # any Unicode: quotes, backslashes, controls
numbers = st.floats(allow_nan=False, allow_infinity=False, width=64)
unit = st.floats(0.0, 1.0)
feature_values = st.one_of(numbers, st.integers(-(2**53), 2**53), st.booleans(), texts)
records = st.builds(
    lambda rid, features: PlainRecord(rid, features),
    texts,
    st.dictionaries(texts, feature_values, min_size=1, max_size=5),
)
predictions = st.builds(
    lambda label, confidence, margin, top: Prediction(label, confidence, margin, tuple(top)),
    texts,
    unit,
    unit,
    st.lists(st.tuples(texts, unit), max_size=4),
)
reviews = st.builds(
    lambda reason, threshold, priority, weight: Decision(
        False, reason, threshold, priority, weight
    ),
    st.sampled_from(list(ReviewReason)),
    st.one_of(unit, st.just(float("inf"))),
    unit,
    st.one_of(st.just(1.0), st.floats(1.0, 1000.0), st.just(-0.0), st.just(0.0), st.just(2)),
)
accepts = st.builds(
    lambda reason, threshold: Decision(True, reason, threshold),
    st.sampled_from(list(AcceptReason)),
    st.one_of(unit, st.just(-0.0), st.just(1)),
)


@st.composite
def batches(draw: st.DrawFn) -> list[tuple[PlainRecord, Prediction | None, Decision]]:
    """Items that share decision objects (as the policy's are shared) across labels."""
    shared = draw(st.lists(st.one_of(accepts, reviews), min_size=1, max_size=4))
    items = []
    for _ in range(draw(st.integers(1, 12))):
        decision = draw(st.one_of(st.sampled_from(shared), accepts, reviews))
        prediction = draw(predictions if decision.accept else st.one_of(st.none(), predictions))
        items.append((draw(records), prediction, decision))
    return items


def expected(
    record: PlainRecord,
    raw: bytes,
    prediction: Prediction | None,
    decision: Decision,
    view: LabelerView,
    at: datetime,
) -> tuple[str, bytes]:
    """The output as the message's fields, serialised whole by orjson."""
    if decision.accept:
        assert prediction is not None
        return TOPICS.labels, orjson.dumps(
            {
                "schema_version": 1,
                "id": record.id,
                "label": prediction.label,
                "confidence": prediction.confidence,
                "threshold": decision.threshold,
                "reason": decision.reason.value,
                "model_version": view.model_version,
                "labeled_at": at,
            }
        )
    assert isinstance(decision.reason, ReviewReason)
    request: dict[str, object] = {
        "schema_version": 1,
        "id": record.id,
        "request_id": ISSUER.issue(
            record,
            decision.reason,
            audit_rate=view.audit_rate,
            model_version=view.model_version,
            epoch=view.epoch,
            now_ms=int(at.timestamp() * 1000),
        ),
        "record": orjson.Fragment(raw),
        "probabilities": [
            {"label": k, "probability": v} for k, v in (prediction.top if prediction else ())
        ],
        "reason": decision.reason.value,
        "priority": decision.priority,
        "model_version": view.model_version,
        "sample_weight": decision.sample_weight,
        "requested_at": at,
    }
    if prediction is not None:
        request["predicted_label"] = prediction.label
    return TOPICS.review, orjson.dumps(request)


@settings(max_examples=300, deadline=None)
@given(
    items=batches(),
    version=st.integers(0, 2**40),
    epoch=st.integers(0, 2**31),
    audit_rate=st.floats(0.0, 1.0),
)
def test_outputs_are_the_json_of_their_fields_byte_for_byte(
    items: list[tuple[PlainRecord, Prediction | None, Decision]],
    version: int,
    epoch: int,
    audit_rate: float,
) -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    view = LabelerView(model_version=version, epoch=epoch, audit_rate=audit_rate)
    routed = []
    for i, (record, prediction, decision) in enumerate(items):
        raw = orjson.dumps({"id": record.id, "features": record.features})
        msg = Inbound("records", 0, i, None, raw)
        routed.append(Routed(msg, record, prediction, decision, None))
    batch = RoutedBatch(view, routed)
    outputs, sent = encode_batch(batch, ISSUER, TOPICS, worker="w", max_output_bytes=10**6, at=at)
    assert len(outputs) == len(items)
    for output, (record, prediction, decision), item in zip(outputs, items, routed, strict=True):
        assert output.key == record.id.encode()
        assert (output.topic, output.value) == expected(
            record, item.msg.value or b"", prediction, decision, view, at
        )
    assert sent.items == routed
    accepted, reviewed, dead = sent.tally()
    assert accepted == Counter(d.reason for _, _, d in items if d.accept)
    assert reviewed == Counter(d.reason for _, _, d in items if not d.accept)
    assert not dead
    assert sent.confidences() == [p.confidence for _, p, _ in items if p is not None]


def test_outputs_read_back_as_their_messages() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    view = LabelerView(model_version=3, audit_rate=0.1)
    record = PlainRecord('r\u00e9"1', {"x": 1, "y": 2.5, "c": "red", "b": True})
    raw = orjson.dumps({"id": record.id, "features": record.features})
    top = (("cat", 0.7), ("dog", 0.3))
    items = [
        Routed(
            Inbound("records", 0, i, None, raw),
            record,
            Prediction("cat", 0.7, 0.4, top),
            decision,
            None,
        )
        for i, decision in enumerate(
            [
                Decision(True, AcceptReason.CERTIFIED, 0.6),
                Decision(False, ReviewReason.AUDIT, 0.6, 0.5, 10.0),
                Decision(False, ReviewReason.UNCERTAIN, 0.8, 0.6),
            ]
        )
    ]
    outputs, _ = encode_batch(
        RoutedBatch(view, items), ISSUER, TOPICS, worker="w", max_output_bytes=10**6, at=at
    )
    label = LabeledRecord.model_validate_json(outputs[0].value)
    assert (label.id, label.label, label.confidence, label.threshold) == (
        record.id,
        "cat",
        0.7,
        0.6,
    )
    for output, weight in zip(outputs[1:], (10.0, 1.0), strict=True):
        request = ReviewRequest.model_validate_json(output.value)
        assert request.record.features == record.features and request.sample_weight == weight
        assert [(p.label, p.probability) for p in request.probabilities] == list(top)
        ticket = ISSUER.verify(request.request_id)
        assert ticket is not None and ticket.reason is request.reason
