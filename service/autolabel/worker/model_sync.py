"""Model sync: every labeler decides with the newest signed snapshot on ``autolabel.models``.

At start the newest valid snapshot is loaded before the worker reports ready; then the
topic is tailed and each newer snapshot (one that absorbed more feedback) replaces the
view the labeler reads at the start of its next batch. Verification, decompression and
unpickling run in a thread, so the event loop (and the labeler) never waits on them. A
snapshot that fails verification is refused with a log line and a metric; the previous
model stays.

The snapshots of this process's own learner are verified on the topic like any other,
but not decoded: when the learner froze one it left here (:class:`LocalViews`) the view
a decode would give, its model an independent copy of the one frozen, and model sync
takes that view once the snapshot's header is verified on the topic. Decoding every
snapshot of the learner it hosts cost a worker as much CPU as learning a few hundred
answers each time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
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

LOCAL_VIEWS = 4  # views of this process's snapshots kept until model sync sees them


def _same_snapshot(a: SnapshotHeader, b: SnapshotHeader) -> bool:
    return (a.writer, a.created_at, a.feedback_offset, a.model_version, a.epoch) == (
        b.writer,
        b.created_at,
        b.feedback_offset,
        b.model_version,
        b.epoch,
    )


class LocalViews:
    """The views of the snapshots this process's learner froze, by header, so that model
    sync need not decode them once it has verified them on the topic.

    The learner offers a view when it freezes a snapshot (before it is sent, so it is
    here before model sync can read the snapshot); its model is a copy of the frozen one
    that the learner never touches again (one writer: labelers only read it). A view is
    handed out once, and the older ones go with it; only the last :data:`LOCAL_VIEWS` are
    kept (one whose snapshot never reached the topic ages out).
    """

    def __init__(self, keep: int = LOCAL_VIEWS) -> None:
        self._views: deque[tuple[SnapshotHeader, LabelerView]] = deque(maxlen=keep)

    def offer(self, header: SnapshotHeader, view: LabelerView) -> None:
        self._views.append((header, view))

    def take(self, header: SnapshotHeader) -> LabelerView | None:
        """The view of the snapshot ``header`` describes, if this process froze it."""
        for i, (h, view) in enumerate(self._views):
            if _same_snapshot(h, header):
                for _ in range(i + 1):  # and the older ones: never newer than this one
                    self._views.popleft()
                return view
        return None

    def __len__(self) -> int:
        return len(self._views)


class ModelSync(Service):
    """Keeps :attr:`view` at the newest snapshot; :attr:`loaded` once the first read ended."""

    def __init__(
        self,
        settings: Settings,
        signer: Signer,
        metrics: Metrics,
        local: LocalViews | None = None,
        **kwargs: object,
    ):
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.settings = settings
        self.signer = signer
        self.metrics = metrics
        self.local = local  # views of this process's own snapshots (see LocalViews)
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
        self._swap(snapshot.header, snapshot.controller.view())

    def _swap(self, header: SnapshotHeader, view: LabelerView) -> None:
        self.view = view
        self.header = header
        self.swapped_at = time.monotonic()
        self.metrics.snapshots_loaded.inc()
        created = datetime.fromisoformat(header.created_at).timestamp()
        self.metrics.view(self.view, created, self.settings.policy.target_precision)
        h = header
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
            local = self.local.take(best[0]) if self.local is not None else None
            if local is not None:  # frozen by this process's learner: verified, not decoded
                self._swap(best[0], local)
                continue
            try:
                loaded = await asyncio.to_thread(decode_snapshot, best[1], self.signer)
            except SnapshotRejected as exc:
                self._rejected(exc)
                continue
            if newer(loaded.header, self.header):  # still newest after the thread hop
                self._use(loaded)
