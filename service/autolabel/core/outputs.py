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
    AcceptReason,
    ConfidenceSignal,
    DeadLetterReason,
    ReviewReason,
    utc_now,
)
from autolabel.core.requests import RequestIssuer
from autolabel.core.tuples import new_tuple
from autolabel.settings import TopicSettings
from autolabel.trust.policy import Decision, LabelerView


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
    at_json = orjson.dumps(at)
    at_fragment = orjson.Fragment(at_json)
    labels_topic, review_topic = topics.labels, topics.review
    # A label is the same JSON but for its id and confidence: the rest is serialised once
    # per decision (decisions to accept are shared by the records of a label).
    label_parts: dict[tuple[str, Decision], tuple[bytes, bytes]] = {}
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
            topic = labels_topic
            # (-0.0 and 0.0 are equal keys that serialise differently: never cached)
            parts = label_parts.get((prediction.label, decision)) if decision.threshold else None
            if parts is None:
                parts = label_parts[prediction.label, decision] = _label_parts(
                    prediction.label, decision, version, at_json
                )
            value = b"".join(
                (
                    _LABEL_START,
                    dumps(record.id),
                    parts[0],
                    dumps(prediction.confidence),
                    parts[1],
                )
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
                "reason": _VALUES[reason],
                "priority": decision.priority,
                "model_version": version,
                "sample_weight": decision.sample_weight,
                "requested_at": at_fragment,
            }
            if prediction is not None:
                request["predicted_label"] = prediction.label
            topic, value = review_topic, dumps(request)
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
        outputs.append(new_tuple(Outbound, (topic, record.id.encode(), value)))
        items.append(item)
    sent = RoutedBatch(view, items, batch.chunk_means, batch.alarm, batch.hold, batch.records)
    signal = signal_message(sent, worker, topics)
    if signal is not None:
        outputs.append(signal)
    return outputs, sent


dumps = orjson.dumps
_VALUES: dict[AcceptReason | ReviewReason, str] = {
    r: r.value for r in (*AcceptReason, *ReviewReason)
}
_LABEL_START = b'{"schema_version":' + dumps(SCHEMA_VERSION) + b',"id":'


def _label_parts(
    label: str, decision: Decision, version: int, at_json: bytes
) -> tuple[bytes, bytes]:
    """A label's JSON around its confidence: ``orjson.dumps`` of the whole
    :class:`~autolabel.core.messages.LabeledRecord` dict is ``_LABEL_START``, the id,
    the first part, the confidence, the second part (a test checks it byte for byte).
    """
    first = b',"label":' + dumps(label) + b',"confidence":'
    second = (
        b',"threshold":'
        + dumps(decision.threshold)
        + b',"reason":'
        + dumps(_VALUES[decision.reason])
        + b',"model_version":'
        + dumps(version)
        + b',"labeled_at":'
        + at_json
        + b"}"
    )
    return first, second


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
