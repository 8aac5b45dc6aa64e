"""The review queue on Kafka: read review requests as a consumer group, hand out the best
first, send answers, and commit only what was answered.

Every reviewer tool (the terminal reviewer, the web page, the Label Studio bridge) sits
on :class:`ReviewQueue`:

.. code-block:: python

    queue = ReviewQueue(settings, reviewer="ada")
    await queue.start()
    while (claim := await queue.next()) is not None:
        await queue.answer(claim, "cat")      # or queue.release(claim) to skip
    await queue.stop()

Several reviewer processes share the queue through one consumer group (default
``<app_id>-reviewers``): Kafka gives each some partitions of the review topic, so no
two processes read the same request. Inside a process, :meth:`ReviewQueue.next` hands
each request to one caller. The decisions are the pure core's
(:mod:`autolabel.review.queue`): the order, the bound, and the offsets that may be
committed. What it guarantees:

* **Nothing unanswered is committed.** An offset is committed only when it and every
  offset before it on its partition was answered (the answer acknowledged by the
  brokers) or deliberately dropped: a request that does not decode (logged; it is the
  service's own output, so that is a bug upstream) or a second copy of a request
  already held or answered (same ``request_id``: at-least-once delivery). A reviewer
  that stops, crashes or loses a partition leaves its unanswered requests to whoever
  reads the partition next.
* **Bounded.** At most ``buffer_size`` requests are held (pending and claimed
  together); when full, the assigned partitions are paused (still polled, so the
  group keeps the member) and nothing is dropped.
* **Answered once.** A queue also reads the feedback topic (the last
  ``answered_history`` answers at start, then as they come): a request answered by
  anyone (another reviewer process, another tool, another group) is not shown again,
  so after a restart only the unanswered requests come back, and a request pending
  here that someone else answers leaves the buffer. Only a request already in a
  reviewer's hands can be answered twice (:meth:`ReviewQueue.answered_elsewhere` says
  so); the learner learns one answer per request whatever arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Self

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import IllegalStateError, KafkaError

from autolabel.core.codec import Rejected, decode, encode
from autolabel.core.messages import Feedback, ReviewRequest
from autolabel.kafka.clients import make_consumer, make_producer
from autolabel.review import answer
from autolabel.review.queue import AnswerTally, Claim, CommitTracker, PriorityBuffer, QueueStats
from autolabel.settings import Settings

log = logging.getLogger(__name__)

POLL_MS = 200
ANSWERED_MEMORY = 100_000
HISTORY_TIMEOUT_S = 30.0
"""Request ids answered that a queue remembers, to drop later copies of them."""


class NotClaimed(RuntimeError):
    """The claim is not held by this queue: answered already, released, or never handed out."""


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, queue: ReviewQueue) -> None:
        self.queue = queue

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self.queue._revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.queue._assigned({tp.partition for tp in assigned})


class ReviewQueue:
    """Review requests for one reviewer process, best first; answers that commit.

    Parameters
    ----------
    settings
        The deployment's settings: the cluster (``AUTOLABEL_KAFKA__*``), the review and
        feedback topics, ``app_id``, and ``AUTOLABEL_MODEL__CLASSES`` (for
        :meth:`known_labels`).
    reviewer
        Who answers: written into every :class:`~autolabel.core.messages.Feedback`.
    group_id
        The consumer group of the review topic; default ``<app_id>-reviewers``. Every
        process of one group shares the queue.
    buffer_size
        Most requests held in this process, pending and claimed together.
    answered_history
        Answers read back from the feedback topic at start, so requests answered before
        (by anyone) are not shown again; 0 reads only answers sent from now on.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        reviewer: str,
        group_id: str | None = None,
        buffer_size: int = 200,
        answered_history: int = 20_000,
    ) -> None:
        if not reviewer:
            raise ValueError("reviewer must name who answers")
        self.settings = settings
        self.reviewer = reviewer
        self.group_id = group_id or f"{settings.app_id}-reviewers"
        self._topic = settings.topics.review
        self._buffer = PriorityBuffer(buffer_size)
        self._trackers: dict[int, CommitTracker] = {}
        self._answered: OrderedDict[str, None] = OrderedDict()
        self._answering: set[str] = set()
        self._claimed_at: dict[str, float] = {}
        self._labels: set[str] = set(settings.model.class_set)
        self._tally = AnswerTally()
        self._lag: dict[int, int] = {}
        self._arrived = asyncio.Event()
        self._commit_lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._reader: asyncio.Task[None] | None = None
        self._answers: AIOKafkaConsumer | None = None  # tails the feedback topic
        self._tail: asyncio.Task[None] | None = None
        self._history = max(answered_history, 0)
        self._feedback = TopicPartition(settings.topics.feedback, 0)
        self._max_bytes = settings.labeler.max_output_bytes * 2

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Connect, join the group and start reading (returns before the first assignment)."""
        if self._consumer is not None:
            raise RuntimeError("the review queue was already started")
        s = self.settings
        producer = make_producer(
            s.kafka, linger_ms=0, max_request_size=max(1_048_576, self._max_bytes)
        )
        consumer = make_consumer(
            s.kafka,
            group_id=self.group_id,
            max_partition_fetch_bytes=max(1_048_576, self._max_bytes),
        )
        answers = make_consumer(s.kafka, group_id=None)
        started: list[AIOKafkaProducer | AIOKafkaConsumer] = []
        try:
            for client in (producer, answers, consumer):
                await client.start()
                started.append(client)
            answers.assign([self._feedback])
            await self._read_history(answers)
        except BaseException:
            for client in reversed(started):
                await client.stop()
            raise
        consumer.subscribe([self._topic], listener=_Rebalance(self))
        self._producer, self._consumer, self._answers = producer, consumer, answers
        self._tail = asyncio.create_task(self._follow_answers(), name="review-queue-answers")
        self._reader = asyncio.create_task(self._read(), name="review-queue-reader")
        log.info("review queue: reading %s as group %s", self._topic, self.group_id)

    async def stop(self) -> None:
        """Commit what was answered, leave the group (unanswered requests go to the
        others at once) and disconnect. Claims still held are not answered."""
        for task in (self._reader, self._tail):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._consumer is not None:
            await self._commit()
            await self._consumer.stop()
        for client in (self._answers, self._producer):
            if client is not None:
                await client.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ reviewers' API

    async def next(self, timeout_s: float = 1.0) -> Claim | None:
        """The best request not claimed by another caller, now claimed by this one; None
        when none arrives within ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            self._check_reader()
            claim = self._buffer.pop()
            if claim is not None:
                self._claimed_at[claim.request_id] = time.monotonic()
                return claim
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), min(remaining, 1.0))

    async def answer(self, claim: Claim, label: str) -> Feedback:
        """Answer a claim with ``label``: send the :class:`Feedback` (built by
        :func:`autolabel.review.answer`, keyed by the record id), wait for its
        acknowledgement, then commit what can be. Raises :class:`NotClaimed` when the
        claim is not held, and the producer's error when the answer could not be sent
        (the claim stays held: answer again or release it)."""
        rid = claim.request_id
        if rid in self._answering or not self._buffer.is_claimed(rid):
            raise NotClaimed(f"request {claim.request.id!r} is not claimed here (answered?)")
        if self._producer is None:
            raise RuntimeError("the review queue is not started")
        feedback = answer(claim.request, label, self.reviewer)
        self._answering.add(rid)
        try:
            await self._producer.send_and_wait(
                self.settings.topics.feedback, encode(feedback), key=claim.request.id.encode()
            )
        finally:
            self._answering.discard(rid)
        self._buffer.finish(claim)
        self._claimed_at.pop(rid, None)
        self._remember(rid)
        tracker = self._trackers.get(claim.partition)
        if tracker is not None:
            tracker.done(claim.offset)
        self._tally.count(claim.request, label)
        self._labels.add(label)
        await self._commit()
        return feedback

    async def settle(self, claim: Claim) -> None:
        """Finish a claim without sending anything: its request was answered already (by
        another reviewer tool, or by this reviewer before a restart; the answer is on the
        feedback topic). Its offset counts as answered and is committed like one. Raises
        :class:`NotClaimed` when the claim is not held."""
        rid = claim.request_id
        if rid in self._answering or not self._buffer.is_claimed(rid):
            raise NotClaimed(f"request {claim.request.id!r} is not claimed here (answered?)")
        self._buffer.finish(claim)
        self._claimed_at.pop(rid, None)
        self._remember(rid)
        tracker = self._trackers.get(claim.partition)
        if tracker is not None:
            tracker.done(claim.offset)
        await self._commit()

    def release(self, claim: Claim) -> None:
        """Skip: the claim goes back to the buffer behind every other request (forgotten
        instead when its partition moved to another reader, who will show it)."""
        if claim.request_id in self._answering:
            return
        tracker = self._trackers.get(claim.partition)
        mine = tracker is not None and tracker.is_open(claim.offset)
        self._buffer.release(claim, requeue=mine)
        self._claimed_at.pop(claim.request_id, None)
        if mine:
            self._arrived.set()

    def answered_elsewhere(self, claim: Claim) -> bool:
        """Whether a claim still held here was answered by someone else meanwhile."""
        return claim.request_id in self._answered and self._buffer.is_claimed(claim.request_id)

    def release_expired(self, max_age_s: float) -> int:
        """Release every claim held longer than ``max_age_s`` (a reviewer who walked
        away); returns how many."""
        now = time.monotonic()
        expired = [rid for rid, at in self._claimed_at.items() if now - at > max_age_s]
        for rid in expired:
            claim = self._buffer.claim(rid)
            if claim is not None:
                self.release(claim)
        return len(expired)

    def known_labels(self) -> list[str]:
        """Labels seen so far in requests' predictions and top-k probabilities and in
        answers, plus ``AUTOLABEL_MODEL__CLASSES``; sorted."""
        return sorted(self._labels)

    def stats(self) -> QueueStats:
        """Counts for a reviewer's screen; answers are this process's since it started."""
        return self._tally.stats(
            buffered=len(self._buffer),
            claimed=self._buffer.claimed,
            lag=sum(self._lag.get(p, 0) for p in self._trackers),
            buffered_by_reason=self._buffer.by_reason(),
            partitions=sorted(self._trackers),
        )

    @property
    def partitions(self) -> list[int]:
        """Partitions of the review topic this queue reads now."""
        return sorted(self._trackers)

    # ------------------------------------------------------------------ reading

    def _check_reader(self) -> None:
        reader = self._reader
        if reader is None:
            raise RuntimeError("the review queue is not started")
        for task in (reader, self._tail):
            failed = task is not None and task.done() and not task.cancelled()
            if failed and (exc := task.exception()) is not None:  # type: ignore[union-attr]
                raise RuntimeError("the review queue stopped reading") from exc

    async def _read(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        paused = False
        while True:
            room = self._buffer.room
            if room <= 0:  # full: poll paused partitions, so the group keeps this member
                if assigned := consumer.assignment():
                    consumer.pause(*assigned)
                paused = True
            elif paused:
                if assigned := consumer.assignment():
                    consumer.resume(*assigned)
                paused = False
            try:
                fetched = await consumer.getmany(timeout_ms=POLL_MS, max_records=max(room, 1))
            except KafkaError as exc:
                log.warning("review queue: fetch failed, retrying: %r", exc)
                await asyncio.sleep(1.0)
                continue
            if room <= 0:
                fetched = {}  # paused: nothing is returned; never hold more than the bound
            arrived = False
            for tp, messages in fetched.items():
                for message in messages:
                    arrived |= self._take(tp.partition, message)
            if arrived:
                self._arrived.set()
            await self._measure_lag(consumer)

    def _take(self, partition: int, message: ConsumerRecord[bytes, bytes]) -> bool:
        """Hold one message read from ``partition``; True when it became pending."""
        tracker = self._trackers.get(partition)
        if tracker is None:
            return False  # the partition moved on while the fetch was in flight
        offset = message.offset
        tracker.received(offset)
        request = decode(ReviewRequest, message.value, max_bytes=self._max_bytes)
        if isinstance(request, Rejected):
            log.error(
                "review queue: skipped an unreadable review request at %s[%d]@%d: %s",
                self._topic,
                partition,
                offset,
                request.error,
            )
            tracker.done(offset)
            return False
        rid = request.request_id
        if rid in self._answered:
            tracker.done(offset)  # a second copy of an answered request
            return False
        held = self._buffer.claim(rid)
        if held is not None and (held.partition, held.offset) == (partition, offset):
            return False  # read again after the partition came back; still in a reviewer's hands
        if held is not None or self._buffer.holds(rid):
            tracker.done(offset)  # a second copy of a request held here
            return False
        self._labels.update(p.label for p in request.probabilities)
        if request.predicted_label is not None:
            self._labels.add(request.predicted_label)
        self._buffer.push(Claim(request, partition, offset))
        return True

    # ------------------------------------------------------------------ answers from anyone

    async def _read_history(self, answers: AIOKafkaConsumer) -> None:
        """Read the last ``answered_history`` answers before any request is shown."""
        tp = self._feedback
        await answers.seek_to_end(tp)
        end = await answers.position(tp)
        first = (await answers.beginning_offsets([tp]))[tp]
        answers.seek(tp, max(first, end - self._history))
        deadline = time.monotonic() + HISTORY_TIMEOUT_S
        read = 0
        while time.monotonic() < deadline:
            batch = await answers.getmany(timeout_ms=POLL_MS, max_records=5000)
            for messages in batch.values():
                read += len(messages)
                for message in messages:
                    self._answered_by_anyone(message.value)
            if not batch and await answers.position(tp) >= end:
                break
        else:
            log.warning(
                "review queue: read %d earlier answers in %.0f s and goes on; requests"
                " answered before may be shown again",
                read,
                HISTORY_TIMEOUT_S,
            )
        log.info("review queue: %d earlier answers read from %s", read, tp.topic)

    async def _follow_answers(self) -> None:
        answers = self._answers
        assert answers is not None
        while True:
            try:
                batch = await answers.getmany(timeout_ms=POLL_MS * 5, max_records=5000)
            except KafkaError as exc:
                log.warning("review queue: reading answers failed, retrying: %r", exc)
                await asyncio.sleep(1.0)
                continue
            for messages in batch.values():
                for message in messages:
                    self._answered_by_anyone(message.value)

    def _answered_by_anyone(self, value: bytes | None) -> None:
        """Note an answer read from the feedback topic; drop its request if pending here.

        Matched by ``request_id`` alone (whether the answer is valid is the learner's
        business)."""
        try:
            answer = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            return
        if not isinstance(answer, dict):
            return
        rid = answer.get("request_id")
        if not isinstance(rid, str) or rid in self._answered:
            return
        self._remember(rid)
        claim = self._buffer.discard(rid)
        if claim is not None and (tracker := self._trackers.get(claim.partition)) is not None:
            tracker.done(claim.offset)

    async def _measure_lag(self, consumer: AIOKafkaConsumer) -> None:
        for partition in list(self._trackers):
            tp = TopicPartition(self._topic, partition)
            end = consumer.highwater(tp)
            if end is None:
                continue
            with contextlib.suppress(IllegalStateError, KafkaError, AssertionError):
                self._lag[partition] = max(0, end - await consumer.position(tp))

    # ------------------------------------------------------------------ offsets and groups

    async def _commit(self, partitions: Iterable[int] | None = None) -> None:
        """Commit every partition's answered prefix that moved (best effort: a failed
        commit is retried with the next one; at worst requests are shown again)."""
        consumer = self._consumer
        if consumer is None:
            return
        async with self._commit_lock:
            wanted = self._trackers if partitions is None else set(partitions)
            offsets: dict[TopicPartition, int] = {}
            for partition in wanted:
                tracker = self._trackers.get(partition)
                position = tracker.committable() if tracker is not None else None
                if position is not None:
                    offsets[TopicPartition(self._topic, partition)] = position
            if not offsets:
                return
            try:
                await consumer.commit(offsets)
            except (KafkaError, IllegalStateError, AssertionError) as exc:
                log.warning("review queue: commit failed (retried with the next): %r", exc)
                return
            for tp, position in offsets.items():
                if (tracker := self._trackers.get(tp.partition)) is not None:
                    tracker.committed(position)

    async def _revoked(self, partitions: set[int]) -> None:
        await self._commit(partitions)
        for partition in partitions:
            self._trackers.pop(partition, None)
            self._lag.pop(partition, None)
        dropped = self._buffer.drop_partitions(partitions)
        if partitions:
            log.info(
                "review queue: partitions %s moved away (%d pending requests left to the"
                " next reader)",
                sorted(partitions),
                len(dropped),
            )

    def _assigned(self, partitions: set[int]) -> None:
        for partition in partitions:
            self._trackers.setdefault(partition, CommitTracker())
        log.info("review queue: reading partitions %s of %s", sorted(partitions), self._topic)

    def _remember(self, request_id: str) -> None:
        self._answered[request_id] = None
        if len(self._answered) > ANSWERED_MEMORY:
            self._answered.popitem(last=False)
