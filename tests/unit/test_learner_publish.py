"""The learner publishes snapshots in the background: learning goes on while one is in
flight, and only an acknowledged snapshot becomes the checkpoint (no broker: a producer
whose acknowledgements the test releases)."""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import RequestTimedOutError
from prometheus_client import CollectorRegistry

from autolabel.core.codec import encode
from autolabel.core.messages import ConfidenceSignal, Feedback, FeedbackSource, Record
from autolabel.core.snapshot import (
    decode_snapshot,
    encode_snapshot,
    freeze_snapshot,
    seal_snapshot,
    verify_header,
)
from autolabel.settings import load_settings
from autolabel.trust.controller import TrustController
from autolabel.worker import model_sync as model_sync_module
from autolabel.worker.learner import LearnerService, controller_config
from autolabel.worker.metrics import Metrics
from autolabel.worker.model_sync import LocalViews, ModelSync
from autolabel.worker.shutdown import Deadline

KEY = secrets.token_hex(32)


class HeldProducer:
    """``send`` returns a future the test resolves: the broker's acknowledgement."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.acks: list[asyncio.Future[Any]] = []

    async def send(self, topic: str, value: bytes, *, key: bytes) -> asyncio.Future[Any]:
        self.sent.append(value)
        ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.acks.append(ack)
        return ack

    def ack(self, i: int = -1) -> None:
        self.acks[i].set_result(type("Metadata", (), {"offset": len(self.sent) - 1})())

    def fail(self, i: int = -1) -> None:
        self.acks[i].set_exception(RequestTimedOutError())


class Backlog:
    """The consumer as far as the learner's loop steps here read it."""

    def __init__(self, end: int) -> None:
        self.end = end
        self.commits: list[dict[TopicPartition, int]] = []
        self.seeks: list[tuple[TopicPartition, int]] = []

    def highwater(self, tp: TopicPartition) -> int:
        return self.end

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))


def feedback(start: int, n: int, topic: str) -> list[ConsumerRecord]:
    out = []
    for i in range(start, start + n):
        record = Record(id=f"r{i}", features={"x": float(i % 2) + 0.01 * (i % 7), "c": "xy"[i % 2]})
        fb = Feedback(id=record.id, record=record, label="ab"[i % 2], source=FeedbackSource.REVIEW)
        value = encode(fb)
        out.append(ConsumerRecord(topic, 0, i, 0, 0, None, value, None, 0, len(value), ()))
    return out


def learner(
    views: LocalViews | None = None, tabular: str = "softmax"
) -> tuple[LearnerService, HeldProducer]:
    settings = load_settings(model={"tabular": tabular}, snapshot={"key": KEY})
    service = LearnerService(
        settings, KEY.encode(), Metrics(CollectorRegistry()), "w1", Deadline(), views
    )
    producer = HeldProducer()
    service.producer = producer  # type: ignore[assignment]
    service.consumer = Backlog(10_000)  # type: ignore[assignment]
    controller = TrustController(controller_config(settings))
    service.controller = controller
    service.checkpoint = encode_snapshot(controller, service.signer, writer="w1")
    return service, producer


async def absorb(service: LearnerService, start: int, n: int) -> None:
    assert service.controller is not None
    tp = TopicPartition(service.settings.topics.feedback, 0)
    messages = feedback(start, n, tp.topic)
    dead, rewind = await service._absorb(service.controller, {tp: messages})
    assert not dead and not rewind


async def until(condition: Any, turns: int = 2000) -> None:
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition not reached")


def test_learning_goes_on_while_a_snapshot_is_in_flight_and_its_ack_sets_the_checkpoint() -> None:
    async def scenario() -> None:
        service, producer = learner()
        first = service.checkpoint
        await absorb(service, 0, 100)
        await service._start_publish()
        await until(lambda: producer.sent)  # sealed and handed to the producer
        # Not acknowledged yet: learning goes on, the checkpoint stays the previous one.
        await absorb(service, 100, 50)
        assert service.controller is not None and service.controller.feedback_offset == 150
        assert service.checkpoint is first and service._inflight is not None
        assert service._since_publish == 50  # only what the snapshot in flight misses
        producer.ack()
        await service._settle()
        assert service.checkpoint == producer.sent[0]
        published = decode_snapshot(producer.sent[0], service.signer)
        assert published.header.feedback_offset == 100  # the state it was frozen in
        assert service._since_publish == 50
        assert service.consumer.commits[-1] == {service._feedback: 100}  # type: ignore[union-attr]
        assert service.metrics.snapshots_published._value.get() == 1

    asyncio.run(scenario())


def test_a_failed_publish_never_becomes_the_checkpoint_and_its_examples_stay_due() -> None:
    async def scenario() -> None:
        service, producer = learner()
        first = service.checkpoint
        await absorb(service, 0, 100)
        service._urgent = True
        await service._start_publish()
        assert service._since_publish == 0 and not service._urgent
        await until(lambda: producer.sent)
        await absorb(service, 100, 20)
        producer.fail()
        await service._settle()
        assert service.checkpoint is first
        assert service._since_publish == 120 and service._urgent  # due again, at once
        assert service._due()
        await service._start_publish()
        await until(lambda: len(producer.sent) == 2)
        producer.ack()
        await service._settle()
        checkpoint = decode_snapshot(service.checkpoint or b"", service.signer)
        assert checkpoint.header.feedback_offset == 120
        assert service._since_publish == 0

    asyncio.run(scenario())


def test_the_next_snapshot_waits_for_the_one_in_flight() -> None:
    async def scenario() -> None:
        service, producer = learner()
        await absorb(service, 0, 60)
        await service._start_publish()
        await until(lambda: producer.sent)
        await absorb(service, 60, 60)
        second = asyncio.ensure_future(service._start_publish())
        await asyncio.sleep(0.05)
        assert not second.done() and len(producer.sent) == 1  # one in flight at a time
        producer.ack(0)
        await second
        await until(lambda: len(producer.sent) == 2)
        producer.ack(1)
        await service._settle()
        offsets = [verify_header(raw, service.signer)[0].feedback_offset for raw in producer.sent]
        assert offsets == [60, 120]  # in order on the topic

    asyncio.run(scenario())


def test_a_rollback_waits_for_the_snapshot_in_flight_and_restores_the_acknowledged_one() -> None:
    async def scenario() -> None:
        service, producer = learner()
        await absorb(service, 0, 80)
        await service._start_publish()
        await until(lambda: producer.sent)
        await absorb(service, 80, 40)
        rewind = asyncio.ensure_future(service._rewind())
        await asyncio.sleep(0.05)
        assert not rewind.done()  # the rollback point is not known before the ack
        producer.ack()
        await rewind
        assert service.controller is not None and service.controller.feedback_offset == 80
        assert service.consumer.seeks[-1] == (service._feedback, 80)  # type: ignore[union-attr]

    asyncio.run(scenario())


def test_a_final_publish_waits_for_its_ack_and_skips_when_nothing_changed() -> None:
    async def scenario() -> None:
        service, producer = learner()
        await absorb(service, 0, 30)
        final = asyncio.ensure_future(service._publish(final=True))
        await until(lambda: producer.sent)
        assert not final.done()
        producer.ack()
        await final
        assert service.checkpoint == producer.sent[0] and service._since_publish == 0
        assert not service.consumer.commits  # type: ignore[union-attr]  # final: no commit
        await service._publish(final=True)
        assert len(producer.sent) == 1

    asyncio.run(scenario())


def test_the_learner_leaves_model_sync_the_view_of_each_snapshot_it_froze() -> None:
    async def scenario() -> None:
        views = LocalViews()
        service, producer = learner(views)
        await absorb(service, 0, 100)
        await service._start_publish()
        await until(lambda: producer.sent)
        assert len(views) == 1
        header, _ = verify_header(producer.sent[0], service.signer)
        view = views.take(header)
        assert view is not None and len(views) == 0
        decoded = decode_snapshot(producer.sent[0], service.signer).controller.view()
        assert view.model is not None and decoded.model is not None
        assert view.model is not service.controller.classifier  # type: ignore[union-attr]
        # The same view a decode gives, the model an independent copy of the frozen one.
        assert _same_fields(view, decoded)
        await absorb(service, 100, 50)  # the learner's model moves on, the view's does not
        records = [Record(id=f"p{i}", features={"x": i / 10, "c": "xy"[i % 2]}) for i in range(10)]
        assert view.model.predict(records) == decoded.model.predict(records)
        assert view.model.version == decoded.model.version == 100
        producer.ack()
        await service._settle()

    asyncio.run(scenario())


def _same_fields(a: Any, b: Any) -> bool:
    names = [f for f in a.__dataclass_fields__ if f != "model"]
    return all(getattr(a, f) == getattr(b, f) for f in names)


def test_local_views_are_taken_once_with_the_older_ones() -> None:
    views = LocalViews(keep=3)
    settings = load_settings(snapshot={"key": KEY})
    controller = TrustController(controller_config(settings))
    at = datetime(2026, 1, 1, tzinfo=UTC)
    headers = []
    for i in range(4):
        controller.feedback_offset = i
        headers.append(freeze_snapshot(controller, writer="w1", at=at).header)
        views.offer(headers[-1], controller.view())
    assert len(views) == 3  # the oldest aged out
    assert views.take(headers[0]) is None
    assert views.take(headers[2]) is not None
    assert len(views) == 1  # the older one went with it
    assert views.take(headers[2]) is None  # once
    assert views.take(headers[3]) is not None


def test_model_sync_verifies_its_own_learners_snapshots_but_does_not_decode_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario() -> None:
        views = LocalViews()
        service, producer = learner(views)
        await absorb(service, 0, 100)
        await service._start_publish()
        await until(lambda: producer.sent)
        producer.ack()
        await service._settle()
        sync = ModelSync(service.settings, service.signer, service.metrics, views)
        raw = producer.sent[0]

        def no_decode(*args: object, **kwargs: object) -> None:
            raise AssertionError("decoded a snapshot its own learner froze")

        monkeypatch.setattr(model_sync_module, "decode_snapshot", no_decode)
        sync.consumer = TopicTail([raw[:-1] + bytes([raw[-1] ^ 1]), raw], sync)  # type: ignore[assignment]
        sync.loaded.set()
        await asyncio.wait_for(sync._follow(sync), 10)  # a mode ServiceTask: takes the service
        assert sync.header is not None and sync.header.feedback_offset == 100
        assert sync.view.feedback_offset == 100 and sync.view.model is not None
        assert sync.metrics.snapshots_rejected.labels(reason="bad_signature")._value.get() == 1

    asyncio.run(scenario())


class TopicTail:
    """Model sync's consumer: no snapshot at first, then one batch, then it stops."""

    def __init__(self, values: list[bytes], sync: ModelSync) -> None:
        self.values = values
        self.sync = sync
        self.calls = 0

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, 0)

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, 0)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        pass

    async def getmany(self, tp: TopicPartition, **kwargs: Any) -> dict[TopicPartition, Any]:
        self.calls += 1
        if self.calls > 1:
            self.sync._stopped.set()  # one batch, then model sync stops
            return {}
        return {
            tp: [
                ConsumerRecord(tp.topic, 0, i, 0, 0, b"k", v, None, 1, len(v), ())
                for i, v in enumerate(self.values)
            ]
        }


def test_snapshot_wire_form_is_unchanged_by_the_split() -> None:
    settings = load_settings(snapshot={"key": KEY})
    controller = TrustController(controller_config(settings))
    service, _ = learner()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    frozen = freeze_snapshot(controller, writer="w1", at=at)
    raw = seal_snapshot(frozen, service.signer)
    assert raw == encode_snapshot(controller, service.signer, writer="w1", at=at)
    header, _ = verify_header(raw, service.signer)
    assert header == frozen.header and header.pickle_bytes == len(frozen.body) > 0


def test_under_a_backlog_each_answer_is_thinned_by_the_answers_waiting_after_it() -> None:
    """The non-labeling candidates skip answers by each answer's own backlog, not the
    backlog after the whole poll: the last poll of a drain is not learned by every
    candidate just because it ends near the high watermark."""

    async def scenario() -> None:
        service, _ = learner(tabular="auto")
        service.consumer = Backlog(1_000)  # type: ignore[assignment]
        controller = service.controller
        assert controller is not None and len(controller.candidates) == 2
        thins: dict[int, int] = {}
        absorb_one = controller.absorb

        def spy(item: Any, offset: int, **kwargs: Any) -> Any:
            thins[offset] = kwargs["thin"]
            return absorb_one(item, offset, **kwargs)

        controller.absorb = spy  # type: ignore[method-assign]
        await absorb(service, 500, 500)  # offsets 500..999 of 1,000: the drain's last poll
        assert all(thins[o] > 1 for o in range(500, 801))  # 200+ answers wait after it
        assert all(thins[o] == 1 for o in range(801, 1_000))
        assert controller.feedback_offset == 1_000
        # what the other candidate skipped is what the thinning asked for
        skipped = sum(1 for c in controller.candidates if c.thinned)
        assert skipped == 1 and max(c.thinned for c in controller.candidates) > 200

    asyncio.run(scenario())


def test_only_signals_read_waits_ten_intervals_and_an_answer_one() -> None:
    """The labelers' signals (their record counts) must reach a snapshot, but a snapshot
    every interval for them alone would hold back the next answer's by up to the
    interval: they wait ten."""

    async def scenario() -> None:
        service, producer = learner()
        controller = service.controller
        assert controller is not None
        service._published_trust = controller.trust_version
        tp = TopicPartition(service.settings.topics.signals, 0)
        value = encode(
            ConfidenceSignal(worker="w2", epoch=0, model_version=0, records=40, chunk_means=[])
        )
        signal = ConsumerRecord(tp.topic, 0, 0, 0, 0, None, value, None, 0, len(value), ())
        dead, rewind = await service._absorb(controller, {tp: [signal]})
        assert not dead and not rewind and controller.records == 40
        interval = service.settings.snapshot.interval_s
        service._last_publish = time.monotonic() - 2 * interval
        assert service._since_publish == 1 and not service._due()
        service._last_publish = time.monotonic() - 10 * interval
        assert service._due()
        service._last_publish = time.monotonic() - 2 * interval
        await absorb(service, 0, 1)  # an answer: due after one interval
        assert service._due()
        await service._start_publish()
        assert service._since_publish == service._feedback_since == 0
        await until(lambda: producer.sent)
        producer.fail()
        await service._settle()
        assert (service._since_publish, service._feedback_since) == (2, 1)  # due again

    asyncio.run(scenario())
