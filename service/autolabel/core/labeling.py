"""The labeler's pure core: a batch of raw messages in, routed messages out.

Decode and validate every message, predict the valid ones with the current
model, let the policy route each: accept → labels, review → review,
invalid → dead-letter. Every input yields exactly one output, keyed by the
record id (or the input's key when no id could be read). The Kafka loop only
fetches, calls :func:`label_batch`, sends and commits; ``autolabel evaluate``
and the benchmark call the same function.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

import orjson

from autolabel.core.codec import Consumed, Rejected, dead_letter_message, decode_record
from autolabel.core.messages import SCHEMA_VERSION, DeadLetterReason, RecordLike, utc_now
from autolabel.model.classifier import OnlineClassifier, Prediction
from autolabel.settings import TopicSettings
from autolabel.trust.drift import DriftEvent
from autolabel.trust.policy import Decision, Policy


@dataclass(frozen=True, slots=True)
class Inbound:
    """One consumed message, with the coordinates dead-letters must carry."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class Outbound(NamedTuple):
    """One message to produce (a tuple: one is built per record)."""

    topic: str
    key: bytes | None
    value: bytes


@dataclass(slots=True)
class BatchOutcome:
    """What a batch produced, with the tallies metrics need."""

    outputs: list[Outbound] = field(default_factory=list)
    accepted: Counter[str] = field(default_factory=Counter)  # by accept reason
    reviewed: Counter[str] = field(default_factory=Counter)  # by review reason
    dead: Counter[str] = field(default_factory=Counter)  # by dead-letter reason
    confidences: list[float] = field(default_factory=list)
    drift_events: list[DriftEvent] = field(default_factory=list)


def label_batch(
    batch: Sequence[Consumed],
    classifier: OnlineClassifier,
    policy: Policy,
    topics: TopicSettings,
    *,
    max_message_bytes: int,
    max_output_bytes: int = 1_000_000,
) -> BatchOutcome:
    """Route every message of a batch; never raises on bad data."""
    out = BatchOutcome()
    learned = classifier.learned()
    version = classifier.version
    at = utc_now()  # one timestamp per batch
    decoded = [decode_record(msg.value, max_bytes=max_message_bytes) for msg in batch]
    valid = [r for r in decoded if not isinstance(r, Rejected)]
    predictions = iter(_predict(classifier, valid))
    for msg, parsed in zip(batch, decoded, strict=True):
        if isinstance(parsed, Rejected):
            _reject(out, msg, parsed, topics)
            continue
        try:
            prediction = next(predictions)
            if isinstance(prediction, Exception):
                raise prediction
            decision = policy.decide(prediction, learned)
        except Exception as exc:  # a model must not take the worker down with it
            _reject(
                out,
                msg,
                Rejected(DeadLetterReason.PROCESSING_ERROR, f"model failed: {exc!r}", parsed.id),
                topics,
            )
            continue
        key = parsed.id.encode()
        if decision.accept:
            assert prediction is not None
            topic, value = topics.labels, _label_json(parsed, prediction, decision, version, at)
        else:
            assert msg.value is not None  # it decoded
            review = _review_json(parsed, msg.value, prediction, decision, version, at)
            topic, value = topics.review, review
        if len(value) > max_output_bytes:  # the echoed record makes it too big to send
            error = (
                f"its {'label' if decision.accept else 'review request'} would be {len(value)}"
                f" bytes, over AUTOLABEL_LABELER__MAX_OUTPUT_BYTES={max_output_bytes}"
            )
            _reject(out, msg, Rejected(DeadLetterReason.OVERSIZED, error, parsed.id), topics)
            continue
        if prediction is not None:
            out.confidences.append(prediction.confidence)
        tally = out.accepted if decision.accept else out.reviewed
        tally[decision.reason] += 1  # a StrEnum: counts under its string value
        out.outputs.append(Outbound(topic, key, value))
    out.drift_events.extend(policy.observe_confidences(out.confidences))
    return out


def _predict(
    classifier: OnlineClassifier, records: Sequence[RecordLike]
) -> list[Prediction | Exception | None]:
    """The batch's predictions; if the batch path fails, record by record, so that one
    bad record costs only itself."""
    try:
        return list(classifier.predict(records))
    except Exception:
        results: list[Prediction | Exception | None] = []
        for record in records:
            try:
                results.append(classifier.predict_one(record))
            except Exception as exc:
                results.append(exc)
        return results


def _label_json(
    record: RecordLike, p: Prediction, d: Decision, version: int, at: datetime
) -> bytes:
    """A ``LabeledRecord`` as JSON, built directly: this runs for every accepted record.

    The contract is still the model: tests decode every output strictly with it.
    """
    return orjson.dumps(
        {
            "schema_version": SCHEMA_VERSION,
            "id": record.id,
            "label": p.label,
            "confidence": p.confidence,
            "threshold": d.threshold,
            "reason": d.reason.value,
            "model_version": version,
            "labeled_at": at,
        }
    )


def _review_json(
    record: RecordLike, raw: bytes, p: Prediction | None, d: Decision, version: int, at: datetime
) -> bytes:
    """A ``ReviewRequest`` as JSON, echoing the record's validated input bytes as they came."""
    request: dict[str, object] = {
        "schema_version": SCHEMA_VERSION,
        "id": record.id,
        "record": orjson.Fragment(raw),
        "probabilities": [{"label": k, "probability": v} for k, v in (p.top if p else ())],
        "reason": d.reason.value,
        "priority": d.priority,
        "model_version": version,
        "sample_weight": d.sample_weight,
        "requested_at": at,
    }
    if p is not None:
        request["predicted_label"] = p.label
    return orjson.dumps(request)


def _reject(out: BatchOutcome, msg: Consumed, rejected: Rejected, topics: TopicSettings) -> None:
    out.dead[rejected.reason.value] += 1
    key, value = dead_letter_message(rejected, msg, "labeler")
    out.outputs.append(Outbound(topics.dead_letter, key, value))
