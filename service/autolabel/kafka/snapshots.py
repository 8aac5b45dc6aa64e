"""Reading and writing signed snapshots on the compacted ``autolabel.models`` topic.

The newest snapshot is the valid one that absorbed the most feedback (ties: the later on
the log), among the last messages of the topic: the log is read backwards in windows,
each message's MAC and header checked (cheap), and only the chosen one is unpickled. A
zombie learner that publishes an older state after a failover cannot roll labelers back:
a snapshot that absorbed less feedback than the one in use is never taken.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from autolabel.core.signing import Signer
from autolabel.core.snapshot import (
    Snapshot,
    SnapshotHeader,
    SnapshotRejected,
    decode_snapshot,
    verify_header,
)

log = logging.getLogger(__name__)

WINDOW = 8  # messages read per step when walking the log backwards


@dataclass(frozen=True, slots=True)
class Candidate:
    offset: int
    header: SnapshotHeader
    raw: bytes


def newer(header: SnapshotHeader, than: SnapshotHeader | None) -> bool:
    """Whether a snapshot absorbed more than ``than`` (a publish of the same state is not).

    >>> from autolabel.core.snapshot import SnapshotHeader
    >>> def h(offset, version):
    ...     return SnapshotHeader("w", "t", version, 0, 0, offset, None, False, False, None)
    >>> newer(h(10, 5), None), newer(h(10, 5), h(9, 9)), newer(h(9, 9), h(10, 5))
    (True, True, False)
    >>> newer(h(10, 6), h(10, 5)), newer(h(10, 5), h(10, 5))
    (True, False)
    """
    if than is None:
        return True
    return (header.feedback_offset, header.model_version, header.epoch) > (
        than.feedback_offset,
        than.model_version,
        than.epoch,
    )


async def read_newest(
    consumer: AIOKafkaConsumer,
    partition: TopicPartition,
    signer: Signer,
    *,
    on_reject: Callable[[SnapshotRejected], None] | None = None,
    timeout_s: float = 30.0,
) -> tuple[Snapshot | None, int]:
    """The newest valid snapshot on ``partition`` and the end offset read up to.

    ``consumer`` must be assigned ``partition`` (no group). Rejected snapshots are
    reported to ``on_reject`` and skipped; the previous valid one is used.
    """
    start = (await consumer.beginning_offsets([partition]))[partition]
    end = (await consumer.end_offsets([partition]))[partition]
    upper = end
    while upper > start:
        lower = max(start, upper - WINDOW)
        found = await _read_range(consumer, partition, lower, upper, signer, on_reject, timeout_s)
        if found is not None:
            try:
                snapshot = await asyncio.to_thread(decode_snapshot, found.raw, signer)
            except SnapshotRejected as exc:
                if on_reject is not None:
                    on_reject(exc)
                upper = found.offset  # look further back, before the unreadable one
                continue
            consumer.seek(partition, end)
            return snapshot, end
        upper = lower
    consumer.seek(partition, end)
    return None, end


async def _read_range(
    consumer: AIOKafkaConsumer,
    partition: TopicPartition,
    lower: int,
    upper: int,
    signer: Signer,
    on_reject: Callable[[SnapshotRejected], None] | None,
    timeout_s: float,
) -> Candidate | None:
    """The newest valid snapshot among offsets ``[lower, upper)``.

    A fetch may come back empty before the broker has answered; the log always holds a
    record at or after ``lower`` (compaction keeps each key's newest), so this reads on
    until it passes ``upper``, within ``timeout_s``.
    """
    consumer.seek(partition, lower)
    best: Candidate | None = None
    position = lower
    deadline = asyncio.get_running_loop().time() + timeout_s
    while position < upper:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"reading {partition.topic} took over {timeout_s:.0f} s")
        batch = await consumer.getmany(partition, timeout_ms=500, max_records=WINDOW)
        for message in batch.get(partition, []):
            position = message.offset + 1
            if message.offset >= upper:
                break
            if message.value is None:  # a tombstone
                continue
            try:
                header, _ = verify_header(message.value, signer)
            except SnapshotRejected as exc:
                if on_reject is not None:
                    on_reject(exc)
                continue
            if best is None or not newer(best.header, header):
                best = Candidate(message.offset, header, message.value)
    return best


async def publish(
    producer: AIOKafkaProducer, topic: str, key: bytes, raw: bytes, *, timeout_s: float
) -> int:
    """Send one snapshot and wait for its acknowledgement; returns its offset."""
    future = await producer.send(topic, raw, key=key)
    metadata = await asyncio.wait_for(future, timeout_s)
    return int(metadata.offset)
