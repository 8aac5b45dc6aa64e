"""Model sync: every labeler decides with the newest signed snapshot on ``autolabel.models``.

At start the newest valid snapshot is loaded before the worker reports ready; then the
topic is tailed and each newer snapshot (one that absorbed more feedback) replaces the
view the labeler reads at the start of its next batch. Verification, decompression and
unpickling run in a thread, so the event loop (and the labeler) never waits on them. A
snapshot that fails verification is refused with a log line and a metric; the previous
model stays.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service

from autolabel.core.signing import Signer
from autolabel.core.snapshot import (
    Snapshot,
    SnapshotHeader,
    SnapshotRejected,
    decode_snapshot,
    verify_header,
)
from autolabel.kafka.clients import make_consumer
from autolabel.kafka.snapshots import newer, read_newest
from autolabel.settings import Settings
from autolabel.trust.policy import LabelerView
from autolabel.worker.metrics import Metrics

log = logging.getLogger(__name__)


class ModelSync(Service):
    """Keeps :attr:`view` at the newest snapshot; :attr:`loaded` once the first read ended."""

    def __init__(self, settings: Settings, signer: Signer, metrics: Metrics, **kwargs: object):
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.settings = settings
        self.signer = signer
        self.metrics = metrics
        self.view = LabelerView(
            mode=settings.policy.mode,
            fixed_threshold=settings.policy.confidence_threshold,
            audit_rate=settings.policy.audit_rate,
            cold_start_examples=settings.policy.cold_start_examples,
        )
        self.header: SnapshotHeader | None = None
        self.loaded = asyncio.Event()
        self.consumer: AIOKafkaConsumer | None = None
        self._partition = TopicPartition(settings.topics.models, 0)
        self.swapped_at = time.monotonic()
        self.metrics.view(self.view, None, settings.policy.target_precision)

    async def on_start(self) -> None:
        s = self.settings
        self.consumer = make_consumer(
            s.kafka,
            group_id=None,
            max_partition_fetch_bytes=s.snapshot.max_bytes + 1024 * 1024,
            fetch_max_bytes=s.snapshot.max_bytes + 1024 * 1024,
        )
        await self.consumer.start()
        self.consumer.assign([self._partition])

    async def on_stop(self) -> None:
        if self.consumer is not None:
            try:
                await asyncio.wait_for(self.consumer.stop(), 2.0)
            except (TimeoutError, KafkaError) as exc:
                log.warning("model sync: stopping its consumer: %r", exc)

    def _rejected(self, exc: SnapshotRejected) -> None:
        log.error("refused a snapshot on %s: %s", self._partition.topic, exc)
        self.metrics.snapshots_rejected.labels(reason=exc.reason).inc()

    def _use(self, snapshot: Snapshot) -> None:
        self.view = snapshot.controller.view()
        self.header = snapshot.header
        self.swapped_at = time.monotonic()
        self.metrics.snapshots_loaded.inc()
        created = datetime.fromisoformat(snapshot.header.created_at).timestamp()
        self.metrics.view(self.view, created, self.settings.policy.target_precision)
        h = snapshot.header
        log.info(
            "labeling with model version %d (%s; feedback offset %d: %d learned, %d duplicates,"
            " %d rejected)",
            h.model_version,
            "certified" if h.certified else "not certified",
            h.feedback_offset,
            h.learned_total,
            h.duplicates,
            sum(h.rejected.values()),
        )

    @Service.task
    async def _follow(self) -> None:
        assert self.consumer is not None
        consumer = self.consumer
        while not self.should_stop:
            try:
                snapshot, _ = await read_newest(
                    consumer, self._partition, self.signer, on_reject=self._rejected
                )
                break
            except (KafkaError, TimeoutError) as exc:
                log.warning("model sync: reading the newest snapshot failed, retrying: %r", exc)
                await self.sleep(1.0)
        else:
            return
        if snapshot is not None:
            self._use(snapshot)
        else:
            log.info("no snapshot on %s yet: starting cold", self._partition.topic)
        self.loaded.set()
        while not self.should_stop:
            try:
                batch = await consumer.getmany(self._partition, timeout_ms=200, max_records=16)
            except KafkaError as exc:
                log.warning("model sync: fetch failed, retrying: %r", exc)
                await self.sleep(1.0)
                continue
            best: tuple[SnapshotHeader, bytes] | None = None
            for message in batch.get(self._partition, []):
                if message.value is None:
                    continue
                try:
                    header, _ = verify_header(message.value, self.signer)
                except SnapshotRejected as exc:
                    self._rejected(exc)
                    continue
                if newer(header, best[0] if best else self.header):
                    best = (header, message.value)
            if best is None:
                continue
            try:
                loaded = await asyncio.to_thread(decode_snapshot, best[1], self.signer)
            except SnapshotRejected as exc:
                self._rejected(exc)
                continue
            if newer(loaded.header, self.header):  # still newest after the thread hop
                self._use(loaded)
