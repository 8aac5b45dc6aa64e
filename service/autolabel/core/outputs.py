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
    at_json = dumps(at)
    version_json = dumps(version)
    labels_topic, review_topic = topics.labels, topics.review
    request_id = issuer.writer(
        audit_rate=view.audit_rate,
        model_version=version,
        epoch=view.epoch,
        now_ms=int(at.timestamp() * 1000),
    )
    # A label is the same JSON but for its id and confidence, a review request but for
    # its id, request id, record, probabilities and priority: the rest is serialised
    # once per batch, by decision (decisions to accept are shared by the records of a
    # label, so they are looked up by identity: the batch holds them all meanwhile).
    label_parts: dict[int, dict[str, tuple[bytes, bytes]]] = {}
    review_tails: dict[tuple[float, str | None], bytes] = {}
    outputs: list[Outbound] = []
    append = outputs.append
    items = batch.items
    replaced: dict[int, Routed] = {}  # by position: dead-lettered here (too big)
    for position, item in enumerate(items):
        msg, record, prediction, decision, rejected = item
        if rejected is not None or record is None or decision is None:
            assert rejected is not None
            append(_dead(topics, rejected, item))
            continue
        if decision[0]:  # accept
            assert prediction is not None
            topic = labels_topic
            by_label = label_parts.get(id(decision))
            if by_label is None:
                by_label = label_parts[id(decision)] = {}
            label = prediction[0]
            parts = by_label.get(label)
            if parts is None:
                parts = by_label[label] = _label_parts(label, decision, version_json, at_json)
            value = b"".join(
                (_LABEL_START, dumps(record.id), parts[0], dumps(prediction[1]), parts[1])
            )
        else:
            assert msg.value is not None  # it decoded
            reason = decision.reason
            assert isinstance(reason, ReviewReason)
            weight = decision.sample_weight
            predicted = prediction[0] if prediction is not None else None
            # (float keys only: 1 == 1.0 but they serialise differently; so do -0.0, 0.0)
            tail_key = (weight, predicted) if type(weight) is float and weight else None
            tail = review_tails.get(tail_key) if tail_key is not None else None
            if tail is None:
                tail = _review_tail(weight, predicted, version_json, at_json)
                if tail_key is not None:
                    review_tails[tail_key] = tail
            value = b"".join(
                (
                    _REVIEW_START,
                    dumps(record.id),
                    _REQUEST_ID,
                    request_id(record, reason),
                    _RECORD,  # the validated input bytes as they came:
                    msg.value,
                    _PROBABILITIES,
                    dumps(
                        [
                            {"label": k, "probability": v}
                            for k, v in (prediction[3] if prediction is not None else ())
                        ]
                    ),
                    _REASON_VALUES[reason],
                    dumps(decision.priority),
                    tail,
                )
            )
            topic = review_topic
        if len(value) > max_output_bytes:  # the echoed record makes it too big to send
            what = "label" if decision.accept else "review request"
            error = Rejected(
                DeadLetterReason.OVERSIZED,
                f"its {what} would be {len(value)} bytes,"
                f" over AUTOLABEL_LABELER__MAX_OUTPUT_BYTES={max_output_bytes}",
                record.id,
            )
            dead = replaced[position] = item._replace(decision=None, rejected=error)
            append(_dead(topics, error, dead))
            continue
        append(new_tuple(Outbound, (topic, record.id.encode(), value)))
    if replaced:
        items = [replaced.get(i, item) for i, item in enumerate(items)]
    sent = RoutedBatch(view, items, batch.chunk_means, batch.alarm, batch.hold, batch.records)
    signal = signal_message(sent, worker, topics)
    if signal is not None:
        append(signal)
    return outputs, sent


dumps = orjson.dumps
_VALUES: dict[AcceptReason | ReviewReason, str] = {
    r: r.value for r in (*AcceptReason, *ReviewReason)
}
_LABEL_START = b'{"schema_version":' + dumps(SCHEMA_VERSION) + b',"id":'
# A ReviewRequest as orjson writes the dict of its fields (a test checks it byte for
# byte): these pieces, and the record's and the batch's values between them.
_REVIEW_START = _LABEL_START
_REQUEST_ID = b',"request_id":"'
_RECORD = b'","record":'
_PROBABILITIES = b',"probabilities":'
_REASON_VALUES: dict[ReviewReason, bytes] = {
    r: b',"reason":' + dumps(r.value) + b',"priority":' for r in ReviewReason
}


def _label_parts(
    label: str, decision: Decision, version_json: bytes, at_json: bytes
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
        + version_json
        + b',"labeled_at":'
        + at_json
        + b"}"
    )
    return first, second


def _review_tail(weight: float, label: str | None, version_json: bytes, at_json: bytes) -> bytes:
    """A review request's JSON after its priority."""
    tail = (
        b',"model_version":'
        + version_json
        + b',"sample_weight":'
        + dumps(weight)
        + b',"requested_at":'
        + at_json
    )
    if label is not None:
        tail += b',"predicted_label":' + dumps(label)
    return tail + b"}"


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
