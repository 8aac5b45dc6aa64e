"""Outputs are partitioned exactly as Kafka's default partitioner would."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import RequestTimedOutError
from aiokafka.partitioner import DefaultPartitioner, murmur2
from fake_producer import FakeProducer
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


OUTPUTS = [("t", f"k{i}".encode(), b"v") for i in range(10)]


def test_send_outputs_returns_only_once_every_output_is_acknowledged() -> None:
    producer = FakeProducer(partitions=2)
    asyncio.run(send_outputs(producer, OUTPUTS))
    assert producer.acked_count == len(OUTPUTS)


def test_send_outputs_raises_when_an_output_is_not_acknowledged() -> None:
    producer = FakeProducer(partitions=2, fail={1, 2})
    with pytest.raises(RequestTimedOutError):
        asyncio.run(send_outputs(producer, OUTPUTS))


def test_enqueue_outputs_hands_over_and_returns_before_the_acks() -> None:
    async def scenario() -> tuple[int, int]:
        producer = FakeProducer(partitions=2)
        acks = await enqueue_outputs(producer, OUTPUTS)
        before = producer.acked_count
        await acks
        return before, producer.acked_count

    assert asyncio.run(scenario()) == (0, len(OUTPUTS))
