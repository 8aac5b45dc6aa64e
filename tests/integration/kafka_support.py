"""Helpers for the integration suite: settings, the CLI, produce, collect, metrics.

Everything talks to a real broker; nothing here mocks Kafka. Clients come from
:mod:`autolabel.kafka.clients`, so a secured cluster's TLS and SASL settings apply to
them as to the service. Workers run through
:class:`autolabel.tools.harness.WorkerProcess` (the ``start_worker`` fixture), configured
only by :meth:`Settings.to_env() <autolabel.settings.Settings.to_env>`.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from autolabel.core.messages import (
    AcceptReason,
    DeadLetter,
    DeadLetterReason,
    Feedback,
    FeedbackSource,
    LabeledRecord,
    Message,
    Record,
    ReviewReason,
    ReviewRequest,
)
from autolabel.kafka.clients import make_consumer, make_producer
from autolabel.settings import KafkaSettings, Settings
from autolabel.tools.harness import WorkerProcess, clean_environment
from autolabel.tools.local_broker import free_port
from autolabel.worker.metrics import CONFIDENCE_BUCKETS

TEST_KEY = "integration-tests-snapshot-key-0123456789abcdef"
"""Signs snapshots and request ids in the suite (a deployment's key is a secret)."""
WAIT_S = 60.0  # generous: other CPU-heavy jobs may share the machine; waits end early
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
LOG_TAIL_LINES = 120

# --------------------------------------------------------------------------- settings


def unique_prefix() -> str:
    return f"it-{uuid.uuid4().hex[:10]}"


def settings_for(bootstrap_servers: str, prefix: str | None = None, **sections: Any) -> Settings:
    """Settings with topics and app id under a fresh prefix; ``sections`` override the rest."""
    prefix = prefix or unique_prefix()
    topics = {
        "records": f"{prefix}.records",
        "labels": f"{prefix}.labels",
        "review": f"{prefix}.review",
        "feedback": f"{prefix}.feedback",
        "dead_letter": f"{prefix}.dead-letter",
        "models": f"{prefix}.models",
        "signals": f"{prefix}.signals",
        **sections.pop("topics", {}),
    }
    validated = _ArgumentsOnly(
        app_id=prefix,
        snapshot={"key": TEST_KEY, **sections.pop("snapshot", {})},
        kafka={"bootstrap_servers": bootstrap_servers, **sections.pop("kafka", {})},
        topics=topics,
        http={"host": "127.0.0.1", "port": free_port(), **sections.pop("http", {})},
        **sections,
    )
    fields = {name: getattr(validated, name) for name in Settings.model_fields}
    return Settings.model_construct(**fields)


class _ArgumentsOnly(Settings):
    """Validates like Settings but never reads this process's environment."""

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: Any, init_settings: Any, *_: Any, **__: Any
    ) -> tuple[Any, ...]:
        return (init_settings,)


def run_cli(
    *args: str, env: Mapping[str, str], timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m autolabel ARGS`` to completion, configured by ``env`` alone.

    ``env`` is usually ``settings.to_env()``; no inherited ``AUTOLABEL_*`` variable applies.
    """
    return subprocess.run(
        [sys.executable, "-m", "autolabel", *args],
        env=clean_environment(os.environ, env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def synced(offset: int) -> Callable[[Metrics], bool]:
    """The worker's labeler decides with a snapshot that absorbed ``offset`` feedback."""
    return lambda m: m.get("autolabel_snapshot_feedback_offset") >= offset


# --------------------------------------------------------------------------- produce


async def produce(
    cluster: str | KafkaSettings,
    topic: str,
    messages: Iterable[tuple[bytes | None, bytes | None]],
) -> list[Any]:
    """Send ``(key, value)`` pairs, await every ack; returns their RecordMetadata in order.

    ``cluster``: bootstrap servers (plaintext), or the settings of a secured cluster.
    """
    kafka = KafkaSettings(bootstrap_servers=cluster) if isinstance(cluster, str) else cluster
    producer = make_producer(kafka, max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        pending = [await producer.send(topic, value, key=key) for key, value in messages]
        acked = list(await asyncio.gather(*pending))
    finally:
        await producer.stop()
    PRODUCED[topic] += len(acked)
    return acked


PRODUCED: Counter[str] = Counter()
"""Messages this test session wrote per topic. (Tansu's ListOffsets answers the base
offset of the last batch + 1, not the end offset, so the topic cannot tell us.)"""


def keyed(messages: Iterable[Message], key: Callable[[Any], str] = lambda m: m.id) -> list:
    """``(key, json)`` pairs for typed messages, keyed by their id by default."""
    return [(key(m).encode(), m.model_dump_json(exclude_none=True).encode()) for m in messages]


# --------------------------------------------------------------------------- collect


@dataclass(frozen=True, slots=True)
class Output:
    """One message read back from an output topic, decoded with its contract model."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: Any  # LabeledRecord | ReviewRequest | DeadLetter


@dataclass
class Outputs:
    """Everything read so far from labels, review and dead-letter."""

    settings: Settings
    items: list[Output] = field(default_factory=list)

    @property
    def labels(self) -> list[LabeledRecord]:
        return [o.value for o in self.items if o.topic == self.settings.topics.labels]

    @property
    def reviews(self) -> list[ReviewRequest]:
        return [o.value for o in self.items if o.topic == self.settings.topics.review]

    @property
    def dead(self) -> list[DeadLetter]:
        return [o.value for o in self.items if o.topic == self.settings.topics.dead_letter]

    def by_topic(self, topic: str) -> list[Output]:
        return [o for o in self.items if o.topic == topic]

    def routed_ids(self) -> set[str]:
        """Ids that came out on labels or review."""
        return {o.value.id for o in self.items if not isinstance(o.value, DeadLetter)}

    def dead_at(self, partition: int, offset: int, stage: str = "labeler") -> list[DeadLetter]:
        """Dead letters whose source is ``partition``/``offset`` of the stage's input topic."""
        t = self.settings.topics
        topic = t.records if stage == "labeler" else t.feedback
        return [
            d
            for d in self.dead
            if (d.source_topic, d.source_partition, d.source_offset, d.stage)
            == (topic, partition, offset, stage)
        ]

    def outputs_for(self, record_id: str) -> list[Output]:
        return [
            o
            for o in self.items
            if getattr(o.value, "id", None) == record_id
            or getattr(o.value, "record_id", None) == record_id
        ]


_MODELS = {"labels": LabeledRecord, "review": ReviewRequest, "dead_letter": DeadLetter}


async def collect(
    settings: Settings,
    until: Callable[[Outputs], bool],
    *,
    timeout_s: float = WAIT_S,
    what: str = "condition",
    worker: WorkerProcess | None = None,
) -> Outputs:
    """Read labels/review/dead-letter from the beginning until ``until(outputs)`` holds.

    Every value must decode with its contract model (strict: unknown fields fail).
    After the condition holds, reads on until a poll comes back empty, so a duplicate
    already on the topic is seen too. Fails at once if ``worker`` has exited.
    """
    topics = {getattr(settings.topics, name): model for name, model in _MODELS.items()}
    partitions = [TopicPartition(t, p) for t in topics for p in range(settings.topics.partitions)]
    consumer = make_consumer(
        settings.kafka,
        group_id=None,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    out = Outputs(settings)
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + timeout_s
        satisfied = False
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            if satisfied and (not batch or time.monotonic() > deadline):
                return out
            for tp, messages in batch.items():
                model = topics[tp.topic]
                for m in messages:
                    value = model.model_validate_json(m.value)
                    out.items.append(Output(tp.topic, tp.partition, m.offset, m.key, value))
            satisfied = satisfied or until(out)
            if not satisfied and worker is not None and not worker.alive():
                raise AssertionError(f"the worker exited ({worker.returncode}) before {what}")
            if not satisfied and time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout_s}s waiting for {what}; read "
                    f"{len(out.labels)} labels, {len(out.reviews)} reviews, "
                    f"{len(out.dead)} dead letters"
                )
    finally:
        await consumer.stop()


def all_ids_seen(ids: Iterable[str]) -> Callable[[Outputs], bool]:
    """Condition: every id has come out on labels, review or (as record_id) dead-letter."""
    wanted = set(ids)

    def check(out: Outputs) -> bool:
        seen = out.routed_ids() | {d.record_id for d in out.dead if d.record_id}
        return wanted <= seen

    return check


# --------------------------------------------------------------------------- metrics


class Metrics:
    """Parsed Prometheus exposition: sample name + labels → value."""

    def __init__(self, samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> None:
        self.samples = samples

    @classmethod
    def parse(cls, text: str) -> Metrics:
        samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                samples[(s.name, frozenset(s.labels.items()))] = float(s.value)
        return cls(samples)

    def get(self, name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        if key not in self.samples:
            raise KeyError(f"no sample {name}{labels or ''} in /metrics")
        return self.samples[key]

    def series(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        return {labels: v for (n, labels), v in self.samples.items() if n == name}

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}


async def scrape(worker: WorkerProcess) -> Metrics:
    """The worker's ``/metrics``, parsed; it must answer 200."""
    status, body = await worker.aget("/metrics")
    assert status == 200, body
    return Metrics.parse(body.decode())


async def wait_for_metric(
    worker: WorkerProcess,
    check: Callable[[Metrics], bool],
    *,
    timeout_s: float = WAIT_S,
    what: str = "metric condition",
) -> Metrics:
    """Poll ``/metrics`` until ``check`` holds; return the last scrape."""
    deadline = time.monotonic() + timeout_s
    while True:
        metrics = await scrape(worker)
        if check(metrics):
            return metrics
        if time.monotonic() > deadline:
            learned = metrics.samples.get(("autolabel_model_examples_learned", frozenset()))
            raise AssertionError(f"timed out waiting for {what} (examples_learned={learned})")
        await asyncio.sleep(0.25)


def readyz(worker: WorkerProcess) -> tuple[int, dict[str, Any]]:
    status, body = worker.get("/readyz")
    return status, json.loads(body)


# --------------------------------------------------------------------------- data


def blobs(prefix: str, n: int, seed: int, centre: float = 1.5) -> list[tuple[Record, str]]:
    """A learnable, seeded 2-class stream: Gaussian blobs plus an irrelevant categorical.

    Classes sit at ``±centre`` in x and y (unit spread): the best possible accuracy is
    98% at 1.5, 92% at 1.0 and 87% at 0.8.
    """
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = rng.choice(("pos", "neg"))
        mean = centre if label == "pos" else -centre
        features = {
            "x": round(rng.gauss(mean, 1.0), 6),
            "y": round(rng.gauss(mean, 1.0), 6),
            "colour": rng.choice(("red", "blue")),
        }
        out.append((Record(id=f"{prefix}-{i:05d}", features=features), label))
    return out


def feedback_for(
    examples: Iterable[tuple[Record, str]], source: FeedbackSource, reviewer: str | None = None
) -> list[Feedback]:
    return [
        Feedback(id=r.id, record=r, label=label, source=source, reviewer=reviewer)
        for r, label in examples
    ]


# --------------------------------------------------------------------------- reconcile


def reconcile(metrics: Metrics, out: Outputs, records_in: int) -> list[str]:
    """Where ``/metrics`` disagrees with what is on the output topics (empty = agree).

    ``records_in`` is how many messages the records topic holds. Assumes a clean run
    (no redelivery), so every input produced exactly one output.
    """
    problems: list[str] = []

    def check(what: str, metric: float, topics: float) -> None:
        if metric != topics:
            problems.append(f"{what}: /metrics says {metric}, the topics say {topics}")

    labeler_dead = [d for d in out.dead if d.stage == "labeler"]
    check(
        "autolabel_records_consumed_total",
        metrics.get("autolabel_records_consumed_total"),
        records_in,
    )
    check(
        "labels + reviews + labeler dead letters",
        records_in,
        len(out.labels) + len(out.reviews) + len(labeler_dead),
    )
    for accept in AcceptReason:
        check(
            f"decisions accept/{accept}",
            metrics.get("autolabel_decisions_total", outcome="accept", reason=accept.value),
            sum(1 for x in out.labels if x.reason == accept),
        )
    for review in ReviewReason:
        check(
            f"decisions review/{review}",
            metrics.get("autolabel_decisions_total", outcome="review", reason=review.value),
            sum(1 for x in out.reviews if x.reason == review),
        )
    for stage in ("labeler", "learner"):
        for reason in DeadLetterReason:
            check(
                f"dead letters {stage}/{reason}",
                metrics.get("autolabel_dead_letters_total", stage=stage, reason=reason.value),
                sum(1 for d in out.dead if d.stage == stage and d.reason == reason),
            )
    confidences = [x.confidence for x in out.labels] + [
        x.probabilities[0].probability for x in out.reviews if x.predicted_label is not None
    ]
    check(
        "autolabel_prediction_confidence_count",
        metrics.get("autolabel_prediction_confidence_count"),
        len(confidences),
    )
    for le in CONFIDENCE_BUCKETS:
        check(
            f"autolabel_prediction_confidence_bucket le={le}",
            metrics.get("autolabel_prediction_confidence_bucket", le=str(le)),
            sum(1 for c in confidences if c <= le),
        )
    return problems
