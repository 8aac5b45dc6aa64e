"""The review queue on the real broker: shared by a group, best first, commits only answers,
and its answers reach a live worker's learner with the right source.

Requests come from a live worker (cold start sends every record to review) or are issued
here with the deployment's key, exactly as a labeler issues them (for audits, which a
worker only draws once it has certified a threshold).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from aiokafka import TopicPartition
from kafka_support import WAIT_S, collect, keyed, produce, wait_for_metric
from review_support import feedback_on_topic, issue, publish, topics_for

from autolabel.core.messages import (
    FeedbackSource,
    Record,
    ReviewReason,
)
from autolabel.kafka.clients import make_consumer
from autolabel.review import answer_message
from autolabel.review.kafka_queue import NotClaimed, ReviewQueue
from autolabel.review.queue import Claim
from autolabel.settings import Settings

pytestmark = pytest.mark.integration


async def settled(*queues: ReviewQueue, partitions: int = 3, timeout_s: float = WAIT_S) -> None:
    """Every queue reads some partitions, none twice, all of them together."""
    deadline = time.monotonic() + timeout_s
    while True:
        owned = [set(q.partitions) for q in queues]
        union = set().union(*owned)
        if all(owned) and sum(map(len, owned)) == len(union) == partitions:
            return
        assert time.monotonic() < deadline, f"the group did not settle: {owned}"
        await asyncio.sleep(0.2)


async def drain(
    queue: ReviewQueue, *, answer_with: str | None = "pos", until: int, timeout_s: float = WAIT_S
) -> list[Claim]:
    """Take requests until ``until`` were taken in all; answer each (or keep them claimed)."""
    taken: list[Claim] = []
    deadline = time.monotonic() + timeout_s
    while len(taken) < until:
        assert time.monotonic() < deadline, f"only {len(taken)} of {until} requests arrived"
        claim = await queue.next(timeout_s=0.5)
        if claim is None:
            continue
        taken.append(claim)
        if answer_with is not None:
            await queue.answer(claim, answer_with)
    return taken


async def committed(settings: Settings, group: str) -> dict[int, int | None]:
    consumer = make_consumer(settings.kafka, group_id=group)
    await consumer.start()
    try:
        return {
            p: await consumer.committed(TopicPartition(settings.topics.review, p))
            for p in range(settings.topics.partitions)
        }
    finally:
        await consumer.stop()


# --------------------------------------------------------------------------- the queue alone


async def test_two_queues_in_one_group_split_the_requests(make_settings) -> None:
    settings = await topics_for(make_settings())
    requests = issue("split", [(ReviewReason.UNCERTAIN, 0.5)] * 30)
    async with (
        ReviewQueue(settings, reviewer="ada") as ada,
        ReviewQueue(settings, reviewer="bob") as bob,
    ):
        await settled(ada, bob)
        await publish(settings, requests)
        seen: dict[str, list[str]] = {"ada": [], "bob": []}

        async def work(queue: ReviewQueue) -> None:
            while sum(map(len, seen.values())) < len(requests):
                claim = await queue.next(timeout_s=0.3)
                if claim is not None:
                    seen[queue.reviewer].append(claim.request.request_id)
                    await queue.answer(claim, "pos")

        await asyncio.wait_for(asyncio.gather(work(ada), work(bob)), WAIT_S)
        assert ada.stats().answered + bob.stats().answered == len(requests)
    both = seen["ada"] + seen["bob"]
    assert sorted(both) == sorted(r.request_id for r in requests), "each request exactly once"
    assert seen["ada"] and seen["bob"], "both reviewers got a share"
    feedback = await feedback_on_topic(settings, len(requests))
    assert len(feedback) == len(requests)
    assert Counter(f.reviewer for f in feedback) == {
        "ada": len(seen["ada"]),
        "bob": len(seen["bob"]),
    }
    assert {f.request_id for f in feedback} == {r.request_id for r in requests}


async def test_requests_come_out_audits_first_then_by_priority(make_settings) -> None:
    settings = await topics_for(make_settings())
    specs = [
        (ReviewReason.UNCERTAIN, 0.3),
        (ReviewReason.COLD_START, 1.0),
        (ReviewReason.AUDIT, 0.1),
        (ReviewReason.UNCERTAIN, 0.9),
        (ReviewReason.DRIFT, 0.5),
        (ReviewReason.UNCERTAIN, 0.9),  # same priority, issued later: after the other
        (ReviewReason.AUDIT, 0.0),
        (ReviewReason.UNCERTAIN, 0.05),
    ]
    requests = issue("prio", specs)
    await publish(settings, requests)
    await publish(settings, requests[3:4])  # a second copy (at-least-once): shown once
    await produce(settings.kafka.bootstrap_servers, settings.topics.review, [(b"x", b"{oops")])
    async with ReviewQueue(settings, reviewer="ada", buffer_size=50) as queue:
        deadline = time.monotonic() + WAIT_S
        while queue.stats().buffered < len(requests):
            assert time.monotonic() < deadline, queue.stats()
            await asyncio.sleep(0.2)
        order = [c.request.id for c in await drain(queue, answer_with=None, until=len(requests))]
        assert await queue.next(timeout_s=1.0) is None, "the duplicate is not shown again"
        labels = queue.known_labels()
    by_id = {r.id: i for i, r in enumerate(requests)}
    assert [by_id[rid] for rid in order] == [2, 6, 1, 3, 5, 4, 0, 7]
    assert labels == ["neg", "pos"]


async def test_a_full_buffer_waits_and_loses_nothing(make_settings) -> None:
    settings = await topics_for(make_settings())
    requests = issue("full", [(ReviewReason.UNCERTAIN, (i % 10) / 10) for i in range(25)])
    await publish(settings, requests)
    async with ReviewQueue(settings, reviewer="ada", buffer_size=4) as queue:
        await asyncio.sleep(2.0)
        assert queue.stats().buffered + queue.stats().claimed <= 4
        taken = await drain(queue, until=len(requests))
        stats = queue.stats()
    assert sorted(c.request.id for c in taken) == sorted(r.id for r in requests)
    assert stats.answered == len(requests) and stats.backlog == 0


async def test_only_answered_offsets_are_committed(make_settings) -> None:
    settings = await topics_for(make_settings())
    requests = issue("commit", [(ReviewReason.UNCERTAIN, i / 12) for i in range(12)])
    where = await publish(settings, requests)
    group = f"{settings.app_id}-reviewers"
    async with ReviewQueue(settings, reviewer="ada") as first:
        answered = await drain(first, until=4)  # the 4 best, wherever they sit
        held = await first.next(timeout_s=WAIT_S)  # claimed, never answered
        skipped = await first.next(timeout_s=WAIT_S)
        assert held is not None and skipped is not None
        first.release(skipped)
        with pytest.raises(NotClaimed):
            await first.answer(answered[0], "pos")  # answered once
    unanswered = {r.id for r in requests} - {c.request.id for c in answered}

    # No committed offset passes an unanswered request.
    positions = await committed(settings, group)
    for partition in range(settings.topics.partitions):
        waiting = [where[rid][1] for rid in unanswered if where[rid][0] == partition]
        if waiting:
            assert (positions[partition] or 0) <= min(waiting), (partition, positions, waiting)

    # The next reviewer of the group gets the unanswered requests again, and only them
    # (it reads the answers already given from the feedback topic).
    async with ReviewQueue(settings, reviewer="bob") as second:
        again = await drain(second, until=len(unanswered), answer_with="neg")
        assert await second.next(timeout_s=2.0) is None
    assert {c.request.id for c in again} == unanswered
    positions = await committed(settings, group)
    assert all(positions[p] is not None for p in {where[rid][0] for rid in unanswered})


async def test_a_request_answered_elsewhere_leaves_the_queue(make_settings) -> None:
    settings = await topics_for(make_settings())
    requests = issue("elsewhere", [(ReviewReason.UNCERTAIN, i / 4) for i in range(4)])
    await publish(settings, requests[:1])
    # answered by another tool before this queue starts, and one while it runs
    await produce(
        settings.kafka.bootstrap_servers,
        settings.topics.feedback,
        [answer_message(requests[0], "pos", "label-studio")],
    )
    await publish(settings, requests[1:])
    async with ReviewQueue(settings, reviewer="ada", group_id="another-group") as queue:
        deadline = time.monotonic() + WAIT_S
        while queue.stats().buffered < 3:
            assert time.monotonic() < deadline, queue.stats()
            await asyncio.sleep(0.2)
        best = await queue.next()
        assert best is not None and best.request.id == requests[3].id
        for request in (requests[3], requests[2]):
            await produce(
                settings.kafka.bootstrap_servers,
                settings.topics.feedback,
                [answer_message(request, "neg", "web")],
            )
        while queue.stats().buffered > 1:
            assert time.monotonic() < deadline, queue.stats()
            await asyncio.sleep(0.2)
        assert queue.answered_elsewhere(best)
        rest = await drain(queue, until=1)
        assert [c.request.id for c in rest] == [requests[1].id]
        assert await queue.next(timeout_s=1.0) is None


# --------------------------------------------------------------------------- with a worker


async def test_answers_reach_the_learner_with_the_right_source(make_settings, start_worker) -> None:
    worker = start_worker(make_settings(policy={"cold_start_examples": 10_000}))
    settings = worker.settings
    records = [Record(id=f"live-{i}", features={"x": i / 10, "y": -i / 10}) for i in range(5)]
    await produce(settings.kafka.bootstrap_servers, settings.topics.records, keyed(records))
    await collect(settings, lambda out: len(out.reviews) >= len(records), worker=worker)
    audits = issue("audit", [(ReviewReason.AUDIT, 0.2)] * 2, predicted="pos")
    await publish(settings, audits)
    truth = {r.id: "pos" if i % 2 else "neg" for i, r in enumerate(records)}
    truth |= {audits[0].id: "pos", audits[1].id: "neg"}  # one audit disagrees
    async with ReviewQueue(settings, reviewer="ada") as queue:
        deadline = time.monotonic() + WAIT_S
        answered: list[Claim] = []
        while len(answered) < len(truth):
            assert time.monotonic() < deadline, f"{len(answered)} of {len(truth)} requests"
            claim = await queue.next(timeout_s=0.5)
            if claim is not None:
                await queue.answer(claim, truth[claim.request.id])
                answered.append(claim)
        stats = queue.stats()
    assert [c.request.reason for c in answered[:2]] == [ReviewReason.AUDIT] * 2, "audits first"
    assert (stats.answered, stats.audits_answered, stats.audit_disagreements) == (7, 2, 1)
    assert stats.answered_by_reason == {"audit": 2, "cold_start": 5}
    await wait_for_metric(
        worker,
        lambda m: (
            m.get("autolabel_feedback_learned_total", source="review") == 5
            and m.get("autolabel_feedback_learned_total", source="audit") == 2
        ),
        what="every answer learned",
    )
    feedback = await feedback_on_topic(settings, len(truth))
    assert {f.id: f.label for f in feedback} == truth
    assert {f.id: f.source for f in feedback} == {
        rid: FeedbackSource.AUDIT if rid.startswith("audit") else FeedbackSource.REVIEW
        for rid in truth
    }
    assert {f.reviewer for f in feedback} == {"ada"}
