"""The learner: the one active owner of the model and trust state, with exactly-once learning.

Every worker runs this service; the one-partition feedback topic makes the consumer group
elect a single active learner, and the others stand by. On taking the partition the
learner restores the newest signed snapshot and resumes from the feedback offset inside
it (not from the group's commits), so every correction is learned exactly once across
crashes and failovers; with no snapshot it starts from the beginning of the feedback log.
It also reads the labelers' confidence signals (same group, range-assigned, so the same
member gets both one-partition topics).

Per poll: decode each answer, check it against the review request it names
(:func:`~autolabel.core.requests.admit`), let the
:class:`~autolabel.trust.controller.TrustController` absorb it, send dead letters (acks
awaited), then publish a snapshot when due: at once when acceptance stopped, after
``every_examples`` examples, or after ``interval_s`` when anything changed, and on
shutdown or revocation. Each published snapshot is also the rollback point: if learning
an example would make the model non-finite, or a dead letter cannot be delivered, the
controller is restored from it and the feedback after it is read again (the refused
example is then dead-lettered instead of learned).

Publishing does not stall learning: the learner waits only while the controller is
pickled (:func:`~autolabel.core.snapshot.freeze_snapshot`); compressing, signing,
sending and the broker's acknowledgement happen in the background while it learns on.
One snapshot is in flight at a time (the next one due waits for it), and only an
acknowledged one becomes the checkpoint: a rollback, a hand-over or a shutdown first
waits for the one in flight. A snapshot that fails leaves its examples counted towards
the next. The view a labeler would decode from each snapshot is left to this process's
model sync (:class:`~autolabel.worker.model_sync.LocalViews`), so it does not decode
what its own learner wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import IllegalStateError, KafkaError
from mode import Service
from prometheus_client import Counter

from autolabel.core.codec import Rejected, dead_letter_message, decode, decode_feedback
from autolabel.core.messages import ConfidenceSignal, DeadLetterReason, FeedbackSource
from autolabel.core.requests import Admitted, RequestIssuer, admit
from autolabel.core.signing import Signer
from autolabel.core.snapshot import (
    SNAPSHOT_PURPOSE,
    Frozen,
    SnapshotRejected,
    decode_snapshot,
    encode_snapshot,
    freeze_snapshot,
    seal_snapshot,
)
from autolabel.kafka.clients import make_consumer, make_producer, rewind_batch
from autolabel.kafka.produce import send_outputs
from autolabel.kafka.snapshots import publish, read_newest
from autolabel.settings import Settings
from autolabel.trust.controller import (
    PRESCORE_CHUNK,
    ControllerConfig,
    ModelUpdateRefused,
    Outcome,
    Prescored,
    TrustController,
)
from autolabel.trust.policy import LabelerView
from autolabel.worker.metrics import Metrics, ReviewAnswer
from autolabel.worker.model_sync import LocalViews
from autolabel.worker.shutdown import Deadline
from autolabel.worker.thinning import Thinning

log = logging.getLogger(__name__)

COST_FACTOR = 10.0  # snapshots at most every COST_FACTOR x the CPU time they cost
SIGNALS_ONLY_FACTOR = 10.0  # what only the labelers' signals moved waits 10x the interval
YIELD_S = 0.02  # the longest stretch of learning before the event loop gets a turn
THIN_BACKLOG = 200  # answers waiting beyond which slow candidates learn a share only
RESTORE_RETRY_S = 1.0


def controller_config(settings: Settings) -> ControllerConfig:
    return ControllerConfig(
        model=settings.model,
        policy=settings.policy,
        top_k=settings.labeler.top_k,
        accuracy_window=settings.learner.accuracy_window,
        dedupe_window=settings.learner.dedupe_window,
    )


@dataclass(frozen=True, slots=True)
class _Publishing:
    """A snapshot on its way to the models topic, and what it covers."""

    frozen: Frozen
    since: int  # messages it covers (absorbed since the snapshot before it)
    feedback_since: int  # of which feedback messages
    urgent: bool  # it was due at once (acceptance stopped)
    trust_version: int
    feedback_offset: int
    signals_offset: int | None
    final: bool  # on hand-over or shutdown: no offset commit
    started: float  # perf_counter when freezing it began
    cpu_s: float  # CPU time freezing it took


def _freeze(
    controller: TrustController, writer: str, with_view: bool
) -> tuple[Frozen, LabelerView | None, float]:
    """The controller pickled, and (``with_view``) the labeler's view of that same state
    with its own copy of the model: what model sync would decode from the snapshot; and
    the CPU time that took (run in a thread: its own)."""
    started = time.thread_time()
    frozen = freeze_snapshot(controller, writer=writer)
    view = controller.view() if with_view else None
    if view is not None and view.model is not None:
        view = replace(view, model=pickle.loads(pickle.dumps(view.model, protocol=5)))
    return frozen, view, time.thread_time() - started


def _seal(frozen: Frozen, signer: Signer) -> tuple[bytes, float]:
    """:func:`seal_snapshot`, and the CPU time it took (run in a thread: its own)."""
    started = time.thread_time()
    raw = seal_snapshot(frozen, signer)
    return raw, time.thread_time() - started


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, learner: LearnerService) -> None:
        self.learner = learner

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self.learner.release(set(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self.learner.take(set(assigned))


class LearnerService(Service):
    """Consumes feedback and signals; owns the controller while it holds the partition."""

    def __init__(
        self,
        settings: Settings,
        secret: bytes,
        metrics: Metrics,
        worker_id: str,
        deadline: Deadline,
        views: LocalViews | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.metrics = metrics
        self.worker_id = worker_id
        self.deadline = deadline
        self.signer = Signer(secret, SNAPSHOT_PURPOSE)
        self.issuer = RequestIssuer(secret)
        self.classes = settings.model.class_set
        self.controller: TrustController | None = None
        self.checkpoint: bytes | None = None  # the last snapshot: the rollback point
        self._refused: set[int] = set()  # feedback offsets a model refused to learn
        self._feedback = TopicPartition(settings.topics.feedback, 0)
        self._signals = TopicPartition(settings.topics.signals, 0)
        self._models = TopicPartition(settings.topics.models, 0)
        self.consumer: AIOKafkaConsumer | None = None
        self.reader: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()  # absorbing, freezing a snapshot, rolling back: one at a time
        self._inflight: asyncio.Task[None] | None = None  # the snapshot being published
        self.views = views  # this process's model sync takes its views of our snapshots
        self._last_publish = 0.0
        self._last_cost = 0.0
        self._since_publish = 0  # messages absorbed since the last snapshot (signals too)
        self._feedback_since = 0  # of which feedback messages
        self._urgent = False  # acceptance stopped: publish at once
        self._published_trust = -1  # the controller's trust_version in the last snapshot
        self._done = asyncio.Event()
        self._learned_counters: dict[FeedbackSource, Counter] = {}  # metric children by source
        self._thinning = Thinning(backlog=THIN_BACKLOG, share=settings.learner.backlog_share)

    @property
    def active(self) -> bool:
        return self.controller is not None

    # ------------------------------------------------------------------ lifecycle

    async def on_start(self) -> None:
        s = self.settings
        big = s.snapshot.max_bytes + 1024 * 1024
        self.producer = make_producer(s.kafka, linger_ms=0, max_request_size=big)
        await self.producer.start()
        self.reader = make_consumer(
            s.kafka, group_id=None, max_partition_fetch_bytes=big, fetch_max_bytes=big
        )
        await self.reader.start()
        self.reader.assign([self._models])
        self.consumer = make_consumer(
            s.kafka,
            group_id=s.learner_group,
            partition_assignment_strategy=(RangePartitionAssignor,),
        )
        await self.consumer.start()
        self.consumer.subscribe([s.topics.feedback, s.topics.signals], listener=_Rebalance(self))
        self.metrics.learner(None)
        log.info("learner standing by for %s as group %s", s.topics.feedback, s.learner_group)

    async def on_stop(self) -> None:
        d = self.deadline.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._done.wait(), d.budget(2.0))
        if self.controller is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._publish(final=True), d.budget(3.0))
        for client in (self.consumer, self.reader, self.producer):
            if client is not None:
                try:
                    await asyncio.wait_for(client.stop(), d.budget(1.5))
                except (TimeoutError, KafkaError) as exc:
                    log.warning("learner: stopping a client: %r", exc)

    # ------------------------------------------------------------------ ownership

    async def take(self, assigned: set[TopicPartition]) -> None:
        """The group gave us the feedback partition: restore, then resume after it."""
        if self._feedback not in assigned or self.controller is not None:
            return
        assert self.consumer is not None
        owned = [tp for tp in (self._feedback, self._signals) if tp in assigned]
        self.consumer.pause(*owned)  # nothing is fetched until we know where to resume
        try:
            await self._settle()  # a publish of a previous ownership must not set the checkpoint
            while not self.should_stop:
                try:
                    await self._restore()
                    return
                except (KafkaError, TimeoutError, OSError) as exc:
                    log.warning("learner: restoring the newest snapshot failed, retrying: %r", exc)
                    await asyncio.sleep(RESTORE_RETRY_S)
        finally:
            with contextlib.suppress(IllegalStateError):
                self.consumer.resume(*owned)

    async def _restore(self) -> None:
        assert self.reader is not None and self.consumer is not None
        snapshot, _ = await read_newest(
            self.reader, self._models, self.signer, on_reject=self._rejected
        )
        if snapshot is None:
            controller = TrustController(controller_config(self.settings))
            await self.consumer.seek_to_beginning(self._feedback)
            log.info("learner active: no snapshot yet, learning the feedback log from its start")
        else:
            controller = snapshot.controller
            self.consumer.seek(self._feedback, controller.feedback_offset)
            log.info(
                "learner active: restored model version %d, resuming feedback at offset %d",
                snapshot.header.model_version,
                controller.feedback_offset,
            )
        if controller.signals_offset is not None:
            self.consumer.seek(self._signals, controller.signals_offset)
        else:
            await self.consumer.seek_to_end(self._signals)
        self.checkpoint = await asyncio.to_thread(
            encode_snapshot, controller, self.signer, writer=self.worker_id
        )
        self._refused = {o for o in self._refused if o >= controller.feedback_offset}
        self.controller = controller
        self._since_publish = 0
        self._feedback_since = 0
        self._last_publish = time.monotonic()
        self.metrics.learner(controller.status())

    async def release(self, revoked: set[TopicPartition]) -> None:
        """The group takes the feedback partition away: publish, then stand by."""
        if self._feedback not in revoked or self.controller is None:
            return
        try:
            await asyncio.wait_for(self._final(), self.settings.kafka.session_timeout_s)
        except Exception as exc:  # the next learner resumes from the previous snapshot
            log.warning("learner: final snapshot before handing over failed: %r", exc)
        self.controller = None
        self.checkpoint = None
        self.metrics.learner(None)
        log.info("learner standing by: the feedback partition moved to another worker")

    def _rejected(self, exc: SnapshotRejected) -> None:
        log.error("learner: refused a snapshot: %s", exc)
        self.metrics.snapshots_rejected.labels(reason=exc.reason).inc()

    # ------------------------------------------------------------------ the loop

    @Service.task
    async def _learn(self) -> None:
        assert self.consumer is not None
        consumer = self.consumer
        s = self.settings
        try:
            while not self.should_stop:
                try:
                    fetched = await consumer.getmany(
                        timeout_ms=100, max_records=s.learner.batch_max_records
                    )
                except KafkaError as exc:
                    log.warning("learner: fetch failed, retrying: %r", exc)
                    await self.sleep(1.0)
                    continue
                async with self._lock:
                    controller = self.controller
                    if controller is None:  # standing by, or restoring: read it again later
                        rewind_batch(consumer, fetched)
                        continue
                    dead, rewind = await self._absorb(controller, fetched)
                    if dead and not rewind:
                        try:
                            await send_outputs(self.producer, dead)
                        except (KafkaError, ValueError) as exc:
                            log.warning("learner: dead letters not delivered: %r", exc)
                            rewind = True
                    if rewind:
                        await self._rewind()
                        continue
                    if fetched:
                        self.metrics.learner(controller.status())
                if self._due():
                    async with self._lock:
                        await self._start_publish()
        finally:
            self._done.set()

    async def _absorb(
        self, controller: TrustController, fetched: dict[TopicPartition, list[ConsumerRecord]]
    ) -> tuple[list[tuple[str, bytes | None, bytes]], bool]:
        """Absorb a poll's messages; returns the dead letters and whether to roll back.

        Yields to the event loop every ``YIELD_S`` of work, so the labeler in the same
        process keeps its latency while the learner drains a backlog; under a backlog the
        candidates that do not label learn every ``thin``-th answer only (by the answers
        waiting after each one and what answers cost: :mod:`~autolabel.worker.thinning`),
        and answers are scored ``PRESCORE_CHUNK`` at a time by the models as they stood
        before the chunk (still before each is learned). The answers to review requests
        it learned reach the metrics at the end of the poll.
        """
        answers: list[ReviewAnswer] = []
        try:
            return await self._absorb_poll(controller, fetched, answers)
        finally:
            self.metrics.count_review_answers(answers, time.time())

    async def _absorb_poll(
        self,
        controller: TrustController,
        fetched: dict[TopicPartition, list[ConsumerRecord]],
        answers: list[ReviewAnswer],
    ) -> tuple[list[tuple[str, bytes | None, bytes]], bool]:
        s = self.settings
        dead: list[tuple[str, bytes | None, bytes]] = []
        end = self._end()
        worked_since = time.perf_counter()
        for tp, messages in fetched.items():
            if tp == self._signals:
                for message in messages:
                    signal = decode(ConfidenceSignal, message.value, max_bytes=4 * 1024 * 1024)
                    if isinstance(signal, Rejected):
                        log.warning("learner: unreadable signal at %d: %s", message.offset, signal)
                        controller.signals_offset = message.offset + 1
                        self._since_publish += 1
                        continue
                    self._count(controller.observe_signal(signal, message.offset))
                continue
            if tp != self._feedback:
                continue
            # fetched before a rollback or restore moved back: already absorbed
            pending = [m for m in messages if m.offset >= controller.feedback_offset]
            # Under a backlog, answers are scored a chunk at a time (see TrustController.
            # prescore): decoded and admitted first, scored in one batch, then absorbed.
            items: list[Admitted | Rejected] = []
            prescored: Prescored | None = None
            start = 0
            for n, message in enumerate(pending):
                waiting = end - message.offset
                thin = self._thinning.thin(waiting)
                if n == start + len(items):  # the next chunk: one answer when keeping up
                    start = n
                    behind = self._thinning.behind(waiting)
                    batch = pending[n : n + (PRESCORE_CHUNK if behind else 1)]
                    items = [self._admit(m) for m in batch]
                    prescored = None
                    if len(batch) > 1:
                        offsets = [m.offset for m in batch]
                        prescored = controller.prescore(list(zip(items, offsets, strict=True)))
                item = items[n - start]
                if time.perf_counter() - worked_since > YIELD_S:
                    await asyncio.sleep(0)
                    worked_since = time.perf_counter()
                began = time.perf_counter()
                try:
                    outcome = controller.absorb(
                        item, message.offset, thin=thin, prescored=prescored
                    )
                except ModelUpdateRefused as exc:
                    log.error("learner: refused feedback at offset %d: %s", message.offset, exc)
                    self._refused.add(message.offset)
                    return dead, True
                except Exception:  # a bug must not stop learning: skip it, like a refusal
                    log.exception("learner: absorbing feedback at offset %d failed", message.offset)
                    self._refused.add(message.offset)
                    return dead, True
                if outcome.kind == "learned" and isinstance(item, Admitted):
                    if thin > 1:  # what the answers cost, the thinned and the others
                        seconds = time.perf_counter() - began
                        self._thinning.observe(seconds, thinned=outcome.thinned)
                    self._count_answer(item, outcome, answers)
                if outcome.rejection is not None:
                    rejection = outcome.rejection
                    if rejection.reason is DeadLetterReason.MODEL_UPDATE_REFUSED:
                        self.metrics.updates_refused.inc()
                    key, value = dead_letter_message(rejection, message, "learner")
                    dead.append((s.topics.dead_letter, key, value))
                    self.metrics.dead_letters.labels(stage="learner", reason=rejection.reason).inc()
                self._count(outcome)
                self._feedback_since += 1
        return dead, False

    def _admit(self, message: ConsumerRecord) -> Admitted | Rejected:
        """Decode one feedback message and check it against the request it names."""
        s = self.settings
        parsed = decode_feedback(
            message.value,
            max_bytes=s.labeler.max_message_bytes,
            max_abs_number=s.labeler.max_abs_number,
        )
        if isinstance(parsed, Rejected):
            return parsed
        if message.offset in self._refused:  # rolled back from it: skip it
            return Rejected(
                DeadLetterReason.MODEL_UPDATE_REFUSED,
                "learning this example would make the model non-finite; the model"
                " was left as it was",
                parsed.id,
            )
        return admit(parsed, self.issuer, self.classes)

    def _count_answer(self, item: Admitted, outcome: Outcome, answers: list[ReviewAnswer]) -> None:
        """Metrics for people: an answer to a review request was learned (its reason and
        issue time from the verified ticket, never from the answer); counted per poll."""
        ticket = item.ticket
        if ticket is None:
            return  # a seed or external label: not an answer to a request
        scored = outcome.scored
        disagrees = None if scored is None or scored.correct is None else not scored.correct
        answers.append(
            ReviewAnswer(ticket.reason, ticket.issued_at_ms, item.feedback.reviewer, disagrees)
        )

    def _end(self) -> int:
        """The feedback partition's high watermark as of the last fetch (0: unknown)."""
        if self.consumer is None:
            return 0
        return self.consumer.highwater(self._feedback) or 0

    def _count(self, outcome: Outcome) -> None:
        m = self.metrics
        kind = outcome.kind
        # Every outcome moved the offsets a snapshot resumes from, duplicates too: a
        # restart must not read (and count) again what this learner already recognised.
        self._since_publish += 1
        if kind == "learned" and outcome.scored is not None:
            source = outcome.scored.source
            child = self._learned_counters.get(source)
            if child is None:  # one label lookup per source, not one per answer
                child = self._learned_counters[source] = m.feedback_learned.labels(
                    source=source.value
                )
            child.inc()
        elif kind == "duplicate":
            m.feedback_duplicates.inc()
        if outcome.drift_events or outcome.promoted:
            m.drifts(outcome.drift_events)
            m.model_promotions.inc(outcome.promoted)
            self._since_publish += 1
        self._urgent |= outcome.tightened or outcome.promoted

    def _due(self) -> bool:
        """Publish at once when acceptance stopped; soon when what labelers decide with
        changed (a certificate, a model, an audit rate); otherwise when enough was learned
        or enough time passed (stretched for models that are slow to snapshot, and ten
        times as long when only the labelers' signals were read: their record counts
        must reach a snapshot, not every half second, and a snapshot published for them
        would hold back the next answer's by up to the interval)."""
        controller = self.controller
        if controller is None or self._since_publish == 0:
            return False
        if self._urgent or self._since_publish >= self.settings.snapshot.every_examples:
            return True
        waited = time.monotonic() - self._last_publish
        interval = self.settings.snapshot.interval_s
        if controller.trust_version != self._published_trust:
            return waited >= interval
        pace = max(interval, COST_FACTOR * self._last_cost)
        if self._feedback_since == 0:
            pace *= SIGNALS_ONLY_FACTOR
        return waited >= pace

    async def _final(self) -> None:
        """Hand-over: the final snapshot, once no poll is being absorbed."""
        async with self._lock:
            await self._publish(final=True)

    async def _publish(self, *, final: bool = False) -> None:
        """Publish a snapshot now and wait for its acknowledgement (shutdown, hand-over;
        ``final``: only if something changed since the last one)."""
        await self._settle()
        if final and self._since_publish == 0:
            return
        await self._start_publish(final=final)
        await self._settle()

    async def _settle(self) -> None:
        """Wait for the snapshot in flight, if any: then the checkpoint is the last one
        acknowledged and the counters say what no snapshot covers yet."""
        task = self._inflight
        if task is not None:
            try:
                await task
            finally:
                if self._inflight is task:
                    self._inflight = None

    async def _start_publish(self, *, final: bool = False) -> None:
        """Freeze a snapshot and publish it in the background: learning waits only for
        the pickling (and for the snapshot before it, if that one is still in flight)."""
        await self._settle()
        controller = self.controller
        if controller is None or self.producer is None:
            return
        started = time.perf_counter()
        frozen, view, cpu_s = await asyncio.to_thread(
            _freeze, controller, self.worker_id, self.views is not None
        )
        publishing = _Publishing(
            frozen=frozen,
            since=self._since_publish,
            feedback_since=self._feedback_since,
            urgent=self._urgent,
            trust_version=controller.trust_version,
            feedback_offset=controller.feedback_offset,
            signals_offset=controller.signals_offset,
            final=final,
            started=started,
            cpu_s=cpu_s,
        )
        self._since_publish = 0
        self._feedback_since = 0
        self._urgent = False
        self._last_publish = time.monotonic()
        self.metrics.learner(controller.status())
        if self.views is not None and view is not None:
            self.views.offer(frozen.header, view)  # before it can be read on the topic
        self._inflight = asyncio.create_task(self._send(publishing))

    async def _send(self, p: _Publishing) -> None:
        """Compress, sign and send a frozen snapshot; on its acknowledgement it becomes
        the checkpoint, otherwise what it covers counts towards the next one."""
        s = self.settings
        done = False
        try:
            raw, sealed_s = await asyncio.to_thread(_seal, p.frozen, self.signer)
            if len(raw) > s.snapshot.max_bytes:
                self.metrics.snapshot_failures.inc()
                log.error(
                    "learner: a %d-byte snapshot is over AUTOLABEL_SNAPSHOT__MAX_BYTES=%d; not"
                    " published (labelers keep the previous model)",
                    len(raw),
                    s.snapshot.max_bytes,
                )
                return
            assert self.producer is not None
            try:
                await publish(
                    self.producer,
                    s.topics.models,
                    s.app_id.encode(),
                    raw,
                    timeout_s=s.snapshot.publish_timeout_s,
                )
            except (KafkaError, TimeoutError) as exc:
                self.metrics.snapshot_failures.inc()
                log.warning("learner: publishing a snapshot failed (will retry): %r", exc)
                return
            done = True
            self._published_trust = p.trust_version
            self.checkpoint = raw
            self._refused = {o for o in self._refused if o >= p.feedback_offset}
            # What a snapshot costs the worker: the CPU time of freezing and sealing it
            # (not the wait for the broker: the learner learns on meanwhile).
            self._last_cost = p.cpu_s + sealed_s
            m = self.metrics
            m.snapshots_published.inc()
            m.snapshot_bytes.set(len(raw))
            m.snapshot_seconds.observe(time.perf_counter() - p.started)
            if self.consumer is not None and not p.final:  # for lag dashboards only
                with contextlib.suppress(KafkaError, AssertionError):
                    offsets = {self._feedback: p.feedback_offset}
                    if p.signals_offset is not None:
                        offsets[self._signals] = p.signals_offset
                    await self.consumer.commit(offsets)
        except Exception:  # a bug must not stop learning: the next snapshot retries
            log.exception("learner: publishing a snapshot failed")
            if not done:
                self.metrics.snapshot_failures.inc()
        finally:
            if not done:  # not on the topic: what it covered is due again
                self._since_publish += p.since
                self._feedback_since += p.feedback_since
                self._urgent |= p.urgent
                self._last_publish = time.monotonic()
            if self._inflight is asyncio.current_task():
                self._inflight = None

    async def _rewind(self) -> None:
        """Back to the last snapshot; read the feedback after it again."""
        await self._settle()  # the checkpoint: the last snapshot acknowledged
        assert self.consumer is not None and self.checkpoint is not None
        snapshot = await asyncio.to_thread(decode_snapshot, self.checkpoint, self.signer)
        controller = snapshot.controller
        self.controller = controller
        self.consumer.seek(self._feedback, controller.feedback_offset)
        if controller.signals_offset is not None:
            self.consumer.seek(self._signals, controller.signals_offset)
        self._since_publish = 1  # publish soon after: progress past the refused example
        self._feedback_since = 1
        log.warning(
            "learner: rolled back to the last snapshot (feedback offset %d)",
            controller.feedback_offset,
        )
