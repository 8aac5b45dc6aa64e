"""ReviewQueue.settle on the real broker: a request answered elsewhere is finished without a
second answer, and committed like an answered one."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition
from kafka_support import WAIT_S
from test_review_queue import committed, drain, issue, publish, topics_for

from autolabel.core.messages import ReviewReason
from autolabel.kafka.clients import make_consumer
from autolabel.review.kafka_queue import NotClaimed, ReviewQueue

pytestmark = pytest.mark.integration


async def test_settled_requests_are_committed_and_send_nothing(make_settings) -> None:
    settings = await topics_for(make_settings())
    requests = issue("settle", [(ReviewReason.UNCERTAIN, i / 6) for i in range(6)])
    where = await publish(settings, requests)
    async with ReviewQueue(settings, reviewer="bridge") as queue:
        claims = await drain(queue, answer_with=None, until=len(requests))
        for claim in claims:
            await queue.settle(claim)
        with pytest.raises(NotClaimed):
            await queue.settle(claims[0])
        assert await queue.next(timeout_s=0.5) is None

    positions = await committed(settings, f"{settings.app_id}-reviewers")
    for partition in {p for p, _ in where.values()}:
        last = max(o for p, o in where.values() if p == partition)
        assert positions[partition] == last + 1, (partition, positions)

    consumer = make_consumer(settings.kafka, group_id=None)
    await consumer.start()
    try:
        feedback = TopicPartition(settings.topics.feedback, 0)
        consumer.assign([feedback])
        await consumer.seek_to_beginning(feedback)
        batch = await consumer.getmany(timeout_ms=int(min(WAIT_S, 2.0) * 1000))
        assert not any(batch.values()), "settle sent feedback"
    finally:
        await consumer.stop()
