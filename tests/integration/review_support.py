"""Review requests and answers for the reviewer tools' integration tests.

``issue`` signs review requests with the deployment's key exactly as a labeler does
(for audits, which a worker draws only once it has certified a threshold);
``feedback_on_topic`` reads the answers back.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from aiokafka import TopicPartition
from kafka_support import TEST_KEY, WAIT_S, keyed, produce

from autolabel.core.messages import (
    Feedback,
    LabelProbability,
    Record,
    ReviewReason,
    ReviewRequest,
)
from autolabel.core.requests import RequestIssuer
from autolabel.kafka.clients import make_consumer
from autolabel.kafka.topics import ensure_topics
from autolabel.settings import Settings

ISSUER = RequestIssuer(TEST_KEY.encode())
AUDIT_RATE = 0.05


def issue(
    prefix: str, specs: Iterable[tuple[ReviewReason, float]], predicted: str = "pos"
) -> list[ReviewRequest]:
    """Review requests signed with the deployment's key, as a labeler issues them."""
    out = []
    for i, (reason, priority) in enumerate(specs):
        record = Record(id=f"{prefix}-{i:03d}", features={"x": float(i), "y": 1.0})
        audit = reason is ReviewReason.AUDIT
        out.append(
            ReviewRequest(
                id=record.id,
                request_id=ISSUER.issue(
                    record,
                    reason,
                    audit_rate=AUDIT_RATE if audit else 0.0,
                    model_version=1,
                    epoch=0,
                ),
                record=record,
                predicted_label=predicted,
                probabilities=[
                    LabelProbability(label=predicted, probability=0.8),
                    LabelProbability(label="neg", probability=0.2),
                ],
                reason=reason,
                priority=priority,
                model_version=1,
                sample_weight=1 / AUDIT_RATE if audit else 1.0,
            )
        )
    return out


async def topics_for(settings: Settings) -> Settings:
    await ensure_topics(settings)
    return settings


async def publish(settings: Settings, requests: list[ReviewRequest]) -> dict[str, tuple[int, int]]:
    """Send requests to the review topic; returns each one's (partition, offset)."""
    acked = await produce(settings.kafka.bootstrap_servers, settings.topics.review, keyed(requests))
    return {r.id: (m.partition, m.offset) for r, m in zip(requests, acked, strict=True)}


async def feedback_on_topic(settings: Settings, n: int) -> list[Feedback]:
    """The first ``n`` messages of the feedback topic (fails if fewer arrive in time)."""
    consumer = make_consumer(settings.kafka, group_id=None)
    await consumer.start()
    tp = TopicPartition(settings.topics.feedback, 0)
    out: list[Feedback] = []
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        deadline = time.monotonic() + WAIT_S
        while len(out) < n and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                out.extend(Feedback.model_validate_json(m.value) for m in messages)
        extra = await consumer.getmany(timeout_ms=1000)  # nothing more than expected
        out.extend(Feedback.model_validate_json(m.value) for ms in extra.values() for m in ms)
    finally:
        await consumer.stop()
    return out
