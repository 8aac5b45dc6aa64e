"""Live scenarios for the fault tests: records streamed at a pace, a reviewer answering every
review request, every output tallied, and the learner's own count read from its snapshot.

Nothing here mocks Kafka: the stream, the reviewer and the tally are real clients of the
suite's broker; the workers are real processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from kafka_support import TEST_KEY

from autolabel.core.messages import (
    AcceptReason,
    DeadLetter,
    LabeledRecord,
    Record,
    ReviewReason,
    ReviewRequest,
)
from autolabel.core.signing import Signer
from autolabel.core.snapshot import SNAPSHOT_PURPOSE, SnapshotHeader
from autolabel.kafka.snapshots import read_newest
from autolabel.review import answer_message
from autolabel.settings import Settings


@dataclass(frozen=True, slots=True)
class Seen:
    """One output about a record."""

    topic: str
    reason: str
    model_version: int | None


@dataclass
class Tally:
    """Every output per record id, and what the reviewer sent."""

    outputs: dict[str, list[Seen]] = field(default_factory=lambda: defaultdict(list))
    answered: set[str] = field(default_factory=set)
    answers_sent: int = 0
    unreadable: int = 0

    def missing(self, ids: Sequence[str]) -> list[str]:
        return [i for i in ids if i not in self.outputs]

    @property
    def duplicates(self) -> int:
        """Outputs beyond the first per record (at-least-once redelivery)."""
        return sum(len(v) - 1 for v in self.outputs.values())

    def reasons(self) -> Counter[str]:
        return Counter(s.reason for seen in self.outputs.values() for s in seen)

    def cold_start_after_certificate(self) -> list[str]:
        """Records sent to review as cold start by a model at least as new as the first one
        that was certified (a restarted or new worker labeling without the learned state)."""
        certified = [
            s.model_version
            for seen in self.outputs.values()
            for s in seen
            if s.reason == AcceptReason.CERTIFIED.value and s.model_version is not None
        ]
        if not certified:
            return []
        first = min(certified)
        return [
            rid
            for rid, seen in self.outputs.items()
            for s in seen
            if s.reason == ReviewReason.COLD_START.value and (s.model_version or 0) >= first
        ]


class Scenario:
    """Runs the reviewer and the tally in the background while a test does its faults."""

    def __init__(self, settings: Settings, truth: dict[str, str]) -> None:
        self.settings = settings
        self.truth = truth
        self.tally = Tally()
        self._tasks: list[asyncio.Task[None]] = []
        self._clients: list[AIOKafkaConsumer | AIOKafkaProducer] = []

    async def __aenter__(self) -> Scenario:
        s = self.settings
        bootstrap = s.kafka.bootstrap_servers
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        await self.producer.start()
        outputs = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=8 << 20
        )
        await outputs.start()
        parts = [
            TopicPartition(t, p)
            for t in (s.topics.labels, s.topics.review, s.topics.dead_letter)
            for p in range(s.topics.partitions)
        ]
        outputs.assign(parts)
        await outputs.seek_to_beginning(*parts)
        self._clients += [self.producer, outputs]
        self._tasks = [asyncio.create_task(self._watch(outputs))]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in self._clients:
            with contextlib.suppress(Exception):
                await client.stop()

    async def _watch(self, consumer: AIOKafkaConsumer) -> None:
        """Tally every output; answer each record's first review request with the truth."""
        t = self.settings.topics
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            answers = []
            for tp, messages in batch.items():
                for m in messages:
                    try:
                        if tp.topic == t.labels:
                            label = LabeledRecord.model_validate_json(m.value)
                            seen = Seen(tp.topic, label.reason.value, label.model_version)
                            rid = label.id
                        elif tp.topic == t.review:
                            request = ReviewRequest.model_validate_json(m.value)
                            seen = Seen(tp.topic, request.reason.value, request.model_version)
                            rid = request.id
                            if rid in self.truth and rid not in self.tally.answered:
                                self.tally.answered.add(rid)
                                answers.append(answer_message(request, self.truth[rid], "sim"))
                        else:
                            letter = DeadLetter.model_validate_json(m.value)
                            seen = Seen(tp.topic, letter.reason.value, None)
                            rid = letter.record_id or f"?{tp.partition}:{m.offset}"
                    except ValueError:
                        self.tally.unreadable += 1
                        continue
                    self.tally.outputs[rid].append(seen)
            if answers:
                pending = [
                    await self.producer.send(self.settings.topics.feedback, value, key=key)
                    for key, value in answers
                ]
                await asyncio.gather(*pending)
                self.tally.answers_sent += len(answers)

    def start_stream(self, records: Sequence[Record], rate: float) -> None:
        """Stream in the background; :meth:`streaming` waits for the last ack."""
        self._stream = asyncio.create_task(self.stream(records, rate))
        self._tasks.append(self._stream)

    async def streaming(self) -> None:
        await self._stream

    async def stream(self, records: Sequence[Record], rate: float) -> None:
        """Produce records at ``rate`` per second, every send acknowledged."""
        started = time.monotonic()
        pending = []
        for i, record in enumerate(records):
            due = started + i / rate
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            pending.append(
                await self.producer.send(
                    self.settings.topics.records,
                    record.model_dump_json(exclude_none=True).encode(),
                    key=record.id.encode(),
                )
            )
            if len(pending) >= 200:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)

    async def settle(self, ids: Sequence[str], timeout_s: float = 90.0) -> SnapshotHeader:
        """Wait until every record came out, every review was answered and the newest
        snapshot counts every answer learned; returns that snapshot's header."""
        deadline = time.monotonic() + timeout_s
        header: SnapshotHeader | None = None
        while time.monotonic() < deadline:
            if not self.tally.missing(ids):
                header = await newest_header(self.settings)
                if header is not None and header.learned_total >= self.tally.answers_sent:
                    await asyncio.sleep(1.0)  # a last look for late duplicates
                    return header
            await asyncio.sleep(0.5)
        missing = self.tally.missing(ids)
        raise AssertionError(
            f"not settled in {timeout_s:.0f} s: {len(missing)} records without an output"
            f" (e.g. {missing[:3]}), {self.tally.answers_sent} answers sent,"
            f" newest snapshot learned {header.learned_total if header else None}"
        )


async def newest_header(settings: Settings) -> SnapshotHeader | None:
    """The header of the newest valid snapshot on the models topic (verified)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        enable_auto_commit=False,
        max_partition_fetch_bytes=64 << 20,
        fetch_max_bytes=64 << 20,
    )
    await consumer.start()
    try:
        tp = TopicPartition(settings.topics.models, 0)
        consumer.assign([tp])
        snapshot, _ = await read_newest(consumer, tp, Signer(TEST_KEY.encode(), SNAPSHOT_PURPOSE))
        return snapshot.header if snapshot else None
    finally:
        await consumer.stop()
