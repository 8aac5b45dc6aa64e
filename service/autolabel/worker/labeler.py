"""The labeler hot path: a batched aiokafka loop inside the Faust worker.

Fetch a batch → take the newest view from model sync (swapped only here, between
batches) → :meth:`~autolabel.core.labeling.LabelerCore.route` →
:func:`~autolabel.core.outputs.encode_batch` → hand every output and the batch's
confidence signal to the producer → await every acknowledgement → commit the batch's
offsets. One batch is in flight while the next is fetched and routed: its acks and
commit (network round trips, ~10 ms a batch) overlap the next batch's CPU work, and the
next batch's outputs are handed over only once they are in. If they fail, both batches
are rewound and routed again. A crash between send and commit re-delivers the batch
(at-least-once); outputs are keyed by record id so consumers can dedupe, and audits are
drawn from the record id, so a batch processed twice routes its records the same way.
A rebalance waits (at most ``REVOKE_WAIT_S``) for the batch in flight to be committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from mode import Service

from autolabel.core.labeling import LabelerCore, RoutedBatch
from autolabel.core.outputs import encode_batch
from autolabel.core.requests import RequestIssuer
from autolabel.kafka.clients import make_consumer, make_producer, rewind_batch
from autolabel.kafka.produce import enqueue_outputs
from autolabel.settings import Settings
from autolabel.worker.metrics import Metrics
from autolabel.worker.model_sync import ModelSync
from autolabel.worker.shutdown import Deadline

log = logging.getLogger(__name__)

LAG_INTERVAL_S = 1.0
STALL_S = 30.0  # a batch taking longer, or lag with no progress for longer: not ready
REVOKE_WAIT_S = 5.0  # a rebalance waits this long at most for the batch in flight


class _Joined(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, labeler: LabelerService) -> None:
        self.labeler = labeler

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        # Let the batch in flight be acknowledged and committed before its partitions
        # move: the next owner then starts after it instead of sending it again.
        inflight = self.labeler._inflight
        if inflight is not None and inflight.done is not None:
            await asyncio.wait({inflight.done}, timeout=REVOKE_WAIT_S)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.labeler.joined = True


class LabelerService(Service):
    """Consumes records in batches, routes them, commits after acks."""

    # mode.Service reserves names such as ``_loop``: keep ours distinct.
    def __init__(
        self,
        settings: Settings,
        issuer: RequestIssuer,
        sync: ModelSync,
        metrics: Metrics,
        worker_id: str,
        deadline: Deadline,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.sync = sync
        self.metrics = metrics
        self.worker_id = worker_id
        self.deadline = deadline
        self.core = LabelerCore(issuer, sync.view)
        self.issuer = issuer
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.joined = False  # the group answered (possibly with no partitions for us)
        self.busy_since: float | None = None
        self.last_progress = time.monotonic()
        self.lag = 0
        self._lag_at = 0.0
        self._lag_partitions: set[int] = set()
        self._done = asyncio.Event()
        self._inflight: _InFlight | None = None

    def stalled(self, now: float | None = None) -> bool:
        """A batch has been in flight too long, or records wait and nothing moves."""
        now = time.monotonic() if now is None else now
        if self.busy_since is not None and now - self.busy_since > STALL_S:
            return True
        inflight = self._inflight  # handed over, but neither acknowledged nor failed
        if (
            inflight is not None
            and not (inflight.done is not None and inflight.done.done())
            and now - inflight.busy_since > STALL_S
        ):
            return True
        return self.lag > 0 and now - self.last_progress > STALL_S

    async def on_start(self) -> None:
        s = self.settings
        self.producer = make_producer(
            s.kafka,
            linger_ms=s.labeler.linger_ms,
            max_request_size=s.labeler.max_output_bytes + 64 * 1024,
        )
        await self.producer.start()
        self.consumer = make_consumer(s.kafka, group_id=s.labeler_group)
        await self.consumer.start()
        self.consumer.subscribe([s.topics.records], listener=_Joined(self))
        log.info("labeler consuming %s as group %s", s.topics.records, s.labeler_group)

    async def on_stop(self) -> None:
        d = self.deadline.start()
        with contextlib.suppress(TimeoutError):  # let the batch in flight finish
            await asyncio.wait_for(self._done.wait(), d.budget(3.0))
        for client in (self.consumer, self.producer):
            if client is not None:
                try:
                    await asyncio.wait_for(client.stop(), d.budget(1.5))
                except (TimeoutError, KafkaError) as exc:
                    log.warning("labeler: stopping a client: %r", exc)

    @Service.task
    async def _consume_batches(self) -> None:
        assert self.consumer is not None and self.producer is not None
        try:
            await self.sync.loaded.wait()  # never label with less than the newest model
            await self._run(self.consumer, self.producer)
        finally:
            self._done.set()

    async def _run(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        s = self.settings
        core = self.core
        inflight: _InFlight | None = None  # sent, its acks and commit still to come
        try:
            while not self.should_stop:
                try:
                    fetched = await consumer.getmany(
                        timeout_ms=s.labeler.batch_timeout_ms or 1,
                        max_records=s.labeler.batch_max_records,
                    )
                except KafkaError as exc:  # transient broker trouble: retry, never exit
                    log.warning("fetch failed, retrying: %r", exc)
                    await self.sleep(1.0)
                    continue
                if not fetched:
                    if inflight is not None:  # nothing new: see the one in flight through
                        settled, inflight = inflight, None
                        if not await self._settled(consumer, settled):
                            await self.sleep(1.0)
                        continue
                    self.last_progress = time.monotonic()  # caught up
                    await self._update_lag(consumer)
                    continue
                started = time.perf_counter()
                self.busy_since = began = time.monotonic()
                if core.view is not self.sync.view:
                    core.swap(self.sync.view)
                batch = list(chain.from_iterable(fetched.values()))
                routed = core.route(
                    batch,
                    max_message_bytes=s.labeler.max_message_bytes,
                    max_abs_number=s.labeler.max_abs_number,
                )
                outputs, sent = encode_batch(
                    routed,
                    self.issuer,
                    s.topics,
                    worker=self.worker_id,
                    max_output_bytes=s.labeler.max_output_bytes,
                )
                if inflight is not None:
                    # The previous batch's acks and commit came in while this one was
                    # routed. Its outputs go first; if they failed, both batches go again.
                    settled, inflight = inflight, None
                    if not await self._settled(consumer, settled):
                        core.unsent(sent)
                        rewind_batch(consumer, fetched, keep=settled.fetched.keys())
                        self.busy_since = None
                        await self.sleep(1.0)
                        continue
                try:
                    acks = await enqueue_outputs(producer, outputs)
                except (KafkaError, ValueError) as exc:  # not handed over: process it again
                    log.warning("producing a batch failed, retrying it: %r", exc)
                    self.metrics.batch_retries.inc()
                    core.unsent(sent)
                    rewind_batch(consumer, fetched)
                    self.busy_since = None
                    await self.sleep(1.0)
                    continue
                inflight = _InFlight(fetched, sent, len(batch), started, began)
                inflight.done = asyncio.ensure_future(self._settle(consumer, inflight, acks))
                self._inflight = inflight
                self.busy_since = None  # handed over: the in-flight batch is watched now
        finally:
            if inflight is not None:  # stopping: let its acks and commit land
                await self._settled(consumer, inflight)

    async def _settled(self, consumer: AIOKafkaConsumer, inflight: _InFlight) -> bool:
        """Wait for ``inflight``'s acks and commit; ``False`` when its outputs were not all
        acknowledged: the batch was rewound and will be routed again."""
        assert inflight.done is not None
        ok = await asyncio.shield(inflight.done)
        if self._inflight is inflight:
            self._inflight = None
        if not ok:
            self.core.unsent(inflight.sent)
            rewind_batch(consumer, inflight.fetched)
        return ok

    async def _settle(
        self, consumer: AIOKafkaConsumer, inflight: _InFlight, acks: asyncio.Future[Any]
    ) -> bool:
        """Await a sent batch's acks, then commit its offsets and count it (a task, so
        that both happen while the next batch is routed)."""
        try:
            await acks
        except (KafkaError, ValueError) as exc:  # not all acked: process the batch again
            log.warning("producing a batch failed, retrying it: %r", exc)
            self.metrics.batch_retries.inc()
            return False
        try:
            await consumer.commit(
                {tp: messages[-1].offset + 1 for tp, messages in inflight.fetched.items()}
            )
        except KafkaError as exc:  # e.g. a rebalance: the next owner re-sends (dedupe by id)
            log.warning("committing offsets failed; the batch may be redelivered: %r", exc)
            self.metrics.batch_retries.inc()
        sent = inflight.sent
        accepted, reviewed, dead = sent.tally()
        self.metrics.count_batch(
            inflight.records,
            accepted,
            reviewed,
            dead,
            sent.confidences(),
            time.perf_counter() - inflight.started,
        )
        self.metrics.labeler_hold.set(1 if self.core.hold else 0)
        self.last_progress = time.monotonic()
        await self._update_lag(consumer)
        return True

    async def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        now = time.monotonic()
        if now - self._lag_at < LAG_INTERVAL_S:
            return
        self._lag_at = now
        assigned = consumer.assignment()
        for partition in self._lag_partitions - {tp.partition for tp in assigned}:
            self.metrics.consumer_lag.remove(str(partition))  # revoked: drop its series
        self._lag_partitions = {tp.partition for tp in assigned}
        total = 0
        for tp in assigned:
            end = consumer.highwater(tp)
            if end is not None:
                lag = max(end - await consumer.position(tp), 0)
                total += lag
                self.metrics.consumer_lag.labels(partition=str(tp.partition)).set(lag)
        self.lag = total


@dataclass(slots=True)
class _InFlight:
    """A batch whose outputs were handed to the producer; its acks and commit pending."""

    fetched: Mapping[TopicPartition, Sequence[Any]]
    sent: RoutedBatch
    records: int
    started: float  # perf_counter when it was fetched
    busy_since: float  # monotonic: when its routing began
    done: asyncio.Future[bool] | None = None
