"""Create the service's topics, or check the ones that exist."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from autolabel.kafka.clients import make_admin
from autolabel.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


@dataclass(frozen=True, slots=True)
class TopicStatus:
    spec: TopicSpec
    partitions: int | None  # what the broker has; None = missing
    created: bool

    @property
    def problem(self) -> str | None:
        if self.partitions is None:
            return f"{self.spec.name}: missing"
        if self.partitions != self.spec.partitions:
            return (
                f"{self.spec.name}: has {self.partitions} partitions,"
                f" configured {self.spec.partitions}"
            )
        return None


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic the service uses, with the partitions it expects.

    Feedback and signals have one partition each: the learner group elects exactly one
    active learner, the single writer of the model. Models is compacted (the newest
    snapshot per key survives) and takes messages as large as the largest snapshot.
    """
    t = settings.topics
    snapshot_bytes = str(settings.snapshot.max_bytes + 1024 * 1024)
    return [
        TopicSpec(t.records, t.partitions, {}),
        TopicSpec(t.labels, t.partitions, {}),
        TopicSpec(t.review, t.partitions, {}),
        TopicSpec(t.feedback, 1, {}),
        TopicSpec(t.signals, 1, {}),
        TopicSpec(t.dead_letter, t.partitions, {}),
        TopicSpec(
            t.models,
            1,
            {
                "cleanup.policy": "compact",
                "max.message.bytes": snapshot_bytes,
                "min.compaction.lag.ms": "60000",
            },
        ),
    ]


async def ensure_topics(settings: Settings, *, create: bool | None = None) -> list[TopicStatus]:
    """Create missing topics (when allowed) and report each one's partition count."""
    create = settings.topics.create if create is None else create
    specs = topic_specs(settings)
    admin = make_admin(settings.kafka)
    await admin.start()
    try:
        existing = await _partitions(admin, [s.name for s in specs])
        missing = [s for s in specs if existing.get(s.name) is None]
        if create and missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker won the race
                await admin.create_topics(
                    [
                        NewTopic(
                            s.name,
                            num_partitions=s.partitions,
                            replication_factor=settings.topics.replication_factor,
                            topic_configs=s.config,
                        )
                        for s in missing
                    ]
                )
            for _ in range(50):  # metadata propagates asynchronously
                existing = await _partitions(admin, [s.name for s in specs])
                if all(existing.get(s.name) for s in specs):
                    break
                await asyncio.sleep(0.1)
        created = {s.name for s in missing} if create else set()
        return [TopicStatus(s, existing.get(s.name), s.name in created) for s in specs]
    finally:
        await admin.close()


async def _partitions(admin: object, names: list[str]) -> dict[str, int | None]:
    # List first: describing a missing topic may auto-create it on some brokers.
    present = set(await admin.list_topics())  # type: ignore[attr-defined]
    result: dict[str, int | None] = dict.fromkeys(names)
    wanted = [n for n in names if n in present]
    if not wanted:
        return result
    described = await admin.describe_topics(wanted)  # type: ignore[attr-defined]
    for topic in described:
        name = topic["topic"]
        ok = topic.get("error_code", 0) == 0 and topic.get("partitions")
        result[name] = len(topic["partitions"]) if ok else None
    return result
