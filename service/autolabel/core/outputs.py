"""The one codec from a labeler's decisions to the messages it sends.

Every consumed message yields exactly one output, keyed by the record id (or the input's
key when no id could be read): a ``LabeledRecord`` on labels, a ``ReviewRequest`` (with a
signed ``request_id``) on review, or a ``DeadLetter``. A batch that fed the labeler's
drift watch also yields one ``ConfidenceSignal`` for the learner. Labels and review
requests are built with orjson directly (they are sent for every record); the pydantic
models stay the contract, and tests decode every output strictly with them.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import orjson

from autolabel.core.codec import Rejected, dead_letter_message, encode
from autolabel.core.labeling import Routed, RoutedBatch
from autolabel.core.messages import (
    SCHEMA_VERSION,
    ConfidenceSignal,
    DeadLetterReason,
    ReviewReason,
    utc_now,
)
from autolabel.core.requests import RequestIssuer
from autolabel.settings import TopicSettings
from autolabel.trust.policy import LabelerView


class Outbound(NamedTuple):
    """One message to produce (a tuple: one is built per record)."""

    topic: str
    key: bytes | None
    value: bytes


def encode_batch(
    batch: RoutedBatch,
    issuer: RequestIssuer,
    topics: TopicSettings,
    *,
    worker: str,
    max_output_bytes: int,
    at: datetime | None = None,
) -> tuple[list[Outbound], RoutedBatch]:
    """The messages of a routed batch, in input order, then its signal (if any).

    Returns the outputs and the batch as sent: a record whose label or review request
    would exceed ``max_output_bytes`` is dead-lettered instead, and the returned batch
    says so (its tallies count what was really sent).
    """
    at = at or utc_now()  # one timestamp per batch
    view = batch.view
    version = view.model_version
    now_ms = int(at.timestamp() * 1000)
    outputs: list[Outbound] = []
    items: list[Routed] = []
    for item in batch.items:
        msg, record, prediction, decision, rejected = item
        if rejected is not None or record is None or decision is None:
            assert rejected is not None
            outputs.append(_dead(topics, rejected, item))
            items.append(item)
            continue
        if decision.accept:
            assert prediction is not None
            topic = topics.labels
            value = orjson.dumps(
                {
                    "schema_version": SCHEMA_VERSION,
                    "id": record.id,
                    "label": prediction.label,
                    "confidence": prediction.confidence,
                    "threshold": decision.threshold,
                    "reason": decision.reason.value,
                    "model_version": version,
                    "labeled_at": at,
                }
            )
        else:
            assert msg.value is not None  # it decoded
            reason = decision.reason
            assert isinstance(reason, ReviewReason)
            request: dict[str, object] = {
                "schema_version": SCHEMA_VERSION,
                "id": record.id,
                "request_id": issuer.issue(
                    record,
                    reason,
                    audit_rate=view.audit_rate,
                    model_version=version,
                    epoch=view.epoch,
                    now_ms=now_ms,
                ),
                "record": orjson.Fragment(msg.value),  # the validated input bytes as they came
                "probabilities": [
                    {"label": k, "probability": v}
                    for k, v in (prediction.top if prediction else ())
                ],
                "reason": reason.value,
                "priority": decision.priority,
                "model_version": version,
                "sample_weight": decision.sample_weight,
                "requested_at": at,
            }
            if prediction is not None:
                request["predicted_label"] = prediction.label
            topic, value = topics.review, orjson.dumps(request)
        if len(value) > max_output_bytes:  # the echoed record makes it too big to send
            what = "label" if decision.accept else "review request"
            error = Rejected(
                DeadLetterReason.OVERSIZED,
                f"its {what} would be {len(value)} bytes,"
                f" over AUTOLABEL_LABELER__MAX_OUTPUT_BYTES={max_output_bytes}",
                record.id,
            )
            dead = item._replace(decision=None, rejected=error)
            outputs.append(_dead(topics, error, dead))
            items.append(dead)
            continue
        outputs.append(Outbound(topic, record.id.encode(), value))
        items.append(item)
    sent = RoutedBatch(view, items, batch.chunk_means, batch.alarm, batch.hold, batch.records)
    signal = signal_message(sent, worker, topics)
    if signal is not None:
        outputs.append(signal)
    return outputs, sent


def signal_message(batch: RoutedBatch, worker: str, topics: TopicSettings) -> Outbound | None:
    """The batch's ``ConfidenceSignal`` for the learner, when it has something to say."""
    if not batch.chunk_means and not batch.alarm:
        return None
    view: LabelerView = batch.view
    signal = ConfidenceSignal(
        worker=worker,
        epoch=view.epoch,
        model_version=view.model_version,
        records=batch.records,
        chunk_means=[min(max(m, 0.0), 1.0) for m in batch.chunk_means],
        alarm=batch.alarm,
    )
    return Outbound(topics.signals, worker.encode(), encode(signal))


def _dead(topics: TopicSettings, rejected: Rejected, item: Routed) -> Outbound:
    key, value = dead_letter_message(rejected, item.msg, "labeler")
    return Outbound(topics.dead_letter, key, value)
