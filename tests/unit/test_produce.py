"""Outputs are partitioned exactly as Kafka's default partitioner would."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import RequestTimedOutError
from aiokafka.partitioner import DefaultPartitioner, murmur2
from hypothesis import given
from hypothesis import strategies as st

from autolabel.kafka.produce import (
    default_partition,
    enqueue_outputs,
    murmur2_many,
    send_outputs,
)


@given(st.lists(st.binary(min_size=0, max_size=40), max_size=60))
def test_batch_murmur2_equals_kafkas(keys: list[bytes]) -> None:
    assert murmur2_many(keys) == [murmur2(k) for k in keys]


@given(st.binary(min_size=1, max_size=30), st.integers(1, 64))
def test_default_partition_equals_aiokafkas(key: bytes, partitions: int) -> None:
    every = list(range(partitions))
    assert default_partition(key, partitions) == DefaultPartitioner()(key, every, every)


class _Batch:
    def __init__(self) -> None:
        self.messages: list[tuple[bytes | None, bytes]] = []

    def append(self, *, key: bytes | None, value: bytes, timestamp: None) -> object:
        self.messages.append((key, value))
        return object()


class _Producer:
    """Acknowledges (or fails) each record batch a few loop turns after it is handed over."""

    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.acked = 0
        self.tasks: list[asyncio.Task[None]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1}

    def create_batch(self) -> _Batch:
        return _Batch()

    async def send_batch(self, batch: _Batch, topic: str, *, partition: int) -> Any:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def ack() -> None:
            for _ in range(3):
                await asyncio.sleep(0)
            if self.fail:
                future.set_exception(RequestTimedOutError())
            else:
                self.acked += len(batch.messages)
                future.set_result(None)

        self.tasks.append(asyncio.ensure_future(ack()))
        return future


OUTPUTS = [("t", f"k{i}".encode(), b"v") for i in range(10)]


def test_send_outputs_returns_only_once_every_output_is_acknowledged() -> None:
    producer = _Producer(fail=False)
    asyncio.run(send_outputs(producer, OUTPUTS))
    assert producer.acked == len(OUTPUTS)


def test_send_outputs_raises_when_an_output_is_not_acknowledged() -> None:
    producer = _Producer(fail=True)
    with pytest.raises(RequestTimedOutError):
        asyncio.run(send_outputs(producer, OUTPUTS))


def test_enqueue_outputs_hands_over_and_returns_before_the_acks() -> None:
    async def scenario() -> tuple[int, int]:
        producer = _Producer(fail=False)
        acks = await enqueue_outputs(producer, OUTPUTS)
        before = producer.acked
        await acks
        return before, producer.acked

    assert asyncio.run(scenario()) == (0, len(OUTPUTS))
