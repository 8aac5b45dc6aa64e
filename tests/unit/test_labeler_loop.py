"""The labeler's loop keeps one batch in flight: what that may and may not change.

The loop's control flow (hand over, settle, rewind, commit) is driven here with an
in-memory consumer and producer that record what the loop asked of them; the broker
tests (tests/integration, the fault tests) cover the same loop against Tansu. What is
checked: a batch's outputs are handed over only once the previous batch's are all
acknowledged, offsets are committed only after their batch's acks, and when acks fail
both the failed batch and the one routed behind it are rewound and produced again, so
every record reaches the topics and the committed offsets end at the end.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from fake_producer import FakeBatch, FakeProducer
from prometheus_client import CollectorRegistry

from autolabel.core.labeling import Inbound
from autolabel.core.requests import RequestIssuer
from autolabel.core.signing import Signer
from autolabel.settings import Settings
from autolabel.worker.labeler import LabelerService
from autolabel.worker.metrics import Metrics
from autolabel.worker.model_sync import ModelSync
from autolabel.worker.shutdown import Deadline

TOPIC = "autolabel.records"
PARTITIONS = 3
PER_PARTITION = 12


class Log:
    """Everything the loop did, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []


class FakeConsumer:
    """Partitions of records with positions, ``getmany``, ``seek`` and ``commit``."""

    def __init__(self, log: Log, service: LabelerService, batch: int) -> None:
        self.log = log
        self.service = service
        self.batch = batch
        self.tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        self.records = {
            tp: [
                Inbound(
                    TOPIC,
                    tp.partition,
                    off,
                    f"r{tp.partition}-{off}".encode(),
                    orjson.dumps({"id": f"r{tp.partition}-{off}", "features": {"x": off}}),
                )
                for off in range(PER_PARTITION)
            ]
            for tp in self.tps
        }
        self.positions = dict.fromkeys(self.tps, 0)
        self.committed: dict[TopicPartition, int] = {}
        self.next = 0
        self.producer: FakeProducer | None = None  # to check commits against acks

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[Any, list[Inbound]]:
        await asyncio.sleep(0)
        if self.committed == {tp: PER_PARTITION for tp in self.tps}:
            self.service._stopped.set()  # everything went through: end the run
            return {}
        for _ in range(PARTITIONS):  # one partition per fetch, round-robin
            tp = self.tps[self.next % PARTITIONS]
            self.next += 1
            start = self.positions[tp]
            chunk = self.records[tp][start : start + min(self.batch, max_records)]
            if chunk:
                self.positions[tp] = chunk[-1].offset + 1
                self.log.events.append(("fetch", (tp.partition, start, chunk[-1].offset)))
                return {tp: chunk}
        return {}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.log.events.append(("seek", (tp.partition, offset)))
        self.positions[tp] = offset

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        await asyncio.sleep(0)
        assert self.producer is not None
        acked = {orjson.loads(v)["id"] for values in self.producer.acked.values() for v in values}
        for tp, offset in offsets.items():
            assert offset >= self.committed.get(tp, 0), "commits never go backwards"
            missing = [r.offset for r in self.records[tp][:offset] if _id(r) not in acked]
            assert not missing, f"committed past records with no acknowledged output: {missing}"
            self.committed[tp] = offset
        self.log.events.append(("commit", {tp.partition: o for tp, o in offsets.items()}))

    def assignment(self) -> set[TopicPartition]:
        return set(self.tps)

    def highwater(self, tp: TopicPartition) -> int:
        return PER_PARTITION

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]


class OrderedProducer(FakeProducer):
    """Checks that no batch is handed over before the previous one's acks are in (the
    labeler's batches here are one record batch each: one topic, one partition)."""

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        assert all(f.done() for f in self.pending), "handed over before the last batch's acks"
        return await super().send_batch(batch, topic, partition=partition)


def labeler(batch: int) -> LabelerService:
    settings = Settings(
        snapshot={"key": "k" * 32},  # type: ignore[arg-type]
        labeler={"batch_max_records": batch},  # type: ignore[arg-type]
    )
    metrics = Metrics(CollectorRegistry())
    sync = ModelSync(settings, Signer(b"k" * 32, "snapshot"), metrics)
    return LabelerService(settings, RequestIssuer(b"k" * 32), sync, metrics, "w1", Deadline())


async def run(fail: set[int], batch: int = 5) -> tuple[LabelerService, Log, Any, Any]:
    log = Log()
    service = labeler(batch)
    consumer = FakeConsumer(log, service, batch)
    producer = OrderedProducer(fail=fail, on_event=lambda *e: log.events.append(e))
    consumer.producer = producer
    service.sleep = _no_sleep  # type: ignore[method-assign,assignment]
    await asyncio.wait_for(service._run(consumer, producer), timeout=30)
    return service, log, consumer, producer


def _id(record: Inbound) -> str:
    return str(orjson.loads(record.value or b"{}")["id"])


async def _no_sleep(seconds: object) -> None:
    await asyncio.sleep(0)


def review_ids(producer: FakeProducer, settings: Settings) -> list[str]:
    return [orjson.loads(v)["id"] for v in producer.acked[settings.topics.review]]


EVERY_ID = {f"r{p}-{o}" for p in range(PARTITIONS) for o in range(PER_PARTITION)}


def test_every_record_goes_out_once_and_offsets_are_committed_after_their_acks() -> None:
    service, log, consumer, producer = asyncio.run(run(fail=set()))
    ids = review_ids(producer, service.settings)  # a cold worker reviews everything
    assert sorted(ids) == sorted(EVERY_ID)
    assert consumer.committed == {tp: PER_PARTITION for tp in consumer.tps}
    # (FakeConsumer.commit checks that every committed record's output was acknowledged.)
    # Pipelined: a batch was fetched while the previous one's acks were outstanding.
    order = [kind for kind, _ in log.events]
    assert any(
        order[i] == "send" and "fetch" in order[i + 1 : order.index("acked", i)]
        for i in range(len(order))
        if order[i] == "send" and "acked" in order[i:]
    )
    assert service.metrics.registry.get_sample_value("autolabel_batch_retries_total") == 0


@pytest.mark.parametrize("failing", [1, 2, 5])
def test_failed_acks_rewind_that_batch_and_the_one_behind_it(failing: int) -> None:
    service, log, consumer, producer = asyncio.run(run(fail={failing}))
    ids = review_ids(producer, service.settings)
    assert set(ids) == EVERY_ID  # nothing lost
    assert consumer.committed == {tp: PER_PARTITION for tp in consumer.tps}
    assert service.metrics.registry.get_sample_value("autolabel_batch_retries_total") == 1
    seeks = [what for kind, what in log.events if kind == "seek"]
    assert seeks, "the failed batch was rewound"
    assert len(ids) - len(set(ids)) <= 2 * 5  # at most the two rewound batches again


def test_a_send_that_cannot_be_handed_over_is_rewound_alone() -> None:
    async def scenario() -> tuple[LabelerService, FakeConsumer, FakeProducer, Log]:
        log = Log()
        service = labeler(5)
        consumer = FakeConsumer(log, service, 5)
        producer = OrderedProducer(on_event=lambda *e: log.events.append(e))
        consumer.producer = producer
        real = producer.send_batch
        calls = 0

        async def refuse_once(batch: FakeBatch, topic: str, *, partition: int) -> Any:
            nonlocal calls
            calls += 1
            if calls == 3:
                raise KafkaError("buffer full")
            return await real(batch, topic, partition=partition)

        producer.send_batch = refuse_once  # type: ignore[method-assign]
        service.sleep = _no_sleep  # type: ignore[method-assign,assignment]
        await asyncio.wait_for(service._run(consumer, producer), timeout=30)
        return service, consumer, producer, log

    service, consumer, producer, log = asyncio.run(scenario())
    assert set(review_ids(producer, service.settings)) == EVERY_ID
    assert consumer.committed == {tp: PER_PARTITION for tp in consumer.tps}
    # The batch before it was settled already: only the refused batch is read again.
    fetches = [what for kind, what in log.events if kind == "fetch"]
    assert [what for kind, what in log.events if kind == "seek"] == [fetches[2][:2]]
    assert service.metrics.registry.get_sample_value("autolabel_batch_retries_total") == 1
