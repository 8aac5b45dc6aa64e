"""The labeler hot path: a batched aiokafka loop inside the Faust worker.

Fetch a batch → :func:`~autolabel.core.labeling.label_batch` → send every output →
await every acknowledgement → commit the batch's offsets. A crash between
send and commit re-delivers the batch (at-least-once); outputs are keyed by
record id so consumers can dedupe.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import IllegalStateError, KafkaError
from mode import Service

from autolabel.core.labeling import label_batch
from autolabel.kafka.clients import make_consumer, make_producer
from autolabel.kafka.produce import send_outputs
from autolabel.model.classifier import OnlineClassifier
from autolabel.settings import Settings
from autolabel.trust.policy import Policy
from autolabel.worker.metrics import Metrics

log = logging.getLogger(__name__)

LAG_INTERVAL_S = 1.0


class LabelerService(Service):
    """Consumes records in batches, routes them, commits after acks."""

    # mode.Service reserves names such as ``_loop``: keep ours distinct.
    def __init__(
        self,
        settings: Settings,
        current: Callable[[], tuple[OnlineClassifier, Policy]],
        metrics: Metrics,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.current = current  # read once per batch: model swaps land between batches
        self.metrics = metrics
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self._lag_at = 0.0
        self._lag_partitions: set[int] = set()

    @property
    def ready(self) -> bool:
        """Connected and assigned at least one records partition."""
        return self.consumer is not None and bool(self.consumer.assignment())

    async def on_start(self) -> None:
        s = self.settings
        self.producer = make_producer(
            s.kafka,
            linger_ms=s.labeler.linger_ms,
            max_request_size=s.labeler.max_output_bytes + 64 * 1024,
        )
        await self.producer.start()
        self.consumer = make_consumer(s.kafka, s.topics.records, group_id=s.labeler_group)
        await self.consumer.start()
        log.info("labeler consuming %s as group %s", s.topics.records, s.labeler_group)

    async def on_stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()

    @Service.task
    async def _consume_batches(self) -> None:
        assert self.consumer is not None and self.producer is not None
        consumer, producer = self.consumer, self.producer
        s = self.settings
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
                await self._update_lag(consumer)
                continue
            started = time.perf_counter()
            batch = [m for messages in fetched.values() for m in messages]
            classifier, policy = self.current()
            outcome = label_batch(
                batch,
                classifier,
                policy,
                s.topics,
                max_message_bytes=s.labeler.max_message_bytes,
                max_output_bytes=s.labeler.max_output_bytes,
            )
            try:
                await send_outputs(producer, ((o.topic, o.key, o.value) for o in outcome.outputs))
            except (KafkaError, ValueError) as exc:  # not all acked: process the batch again
                log.warning("producing a batch failed, retrying it: %r", exc)
                self.metrics.batch_retries.inc()
                for tp, messages in fetched.items():
                    with contextlib.suppress(IllegalStateError):  # revoked meanwhile
                        consumer.seek(tp, messages[0].offset)
                await self.sleep(1.0)
                continue
            try:
                await consumer.commit(
                    {tp: messages[-1].offset + 1 for tp, messages in fetched.items()}
                )
            except KafkaError as exc:  # e.g. a rebalance: the next owner re-sends (dedupe by id)
                log.warning("committing offsets failed; the batch may be redelivered: %r", exc)
                self.metrics.batch_retries.inc()
            self.metrics.count_batch(
                len(batch),
                outcome.accepted,
                outcome.reviewed,
                outcome.dead,
                outcome.confidences,
                time.perf_counter() - started,
            )
            self.metrics.model_version.set(classifier.version)
            self.metrics.drifts(outcome.drift_events)
            await self._update_lag(consumer)

    async def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        now = time.monotonic()
        if now - self._lag_at < LAG_INTERVAL_S:
            return
        self._lag_at = now
        assigned = consumer.assignment()
        for partition in self._lag_partitions - {tp.partition for tp in assigned}:
            self.metrics.consumer_lag.remove(str(partition))  # revoked: drop its series
        self._lag_partitions = {tp.partition for tp in assigned}
        for tp in assigned:
            end = consumer.highwater(tp)
            if end is not None:
                lag = max(end - await consumer.position(tp), 0)
                self.metrics.consumer_lag.labels(partition=str(tp.partition)).set(lag)
