"""Outputs are partitioned exactly as Kafka's default partitioner would."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner, murmur2
from hypothesis import given
from hypothesis import strategies as st

from autolabel.kafka.produce import default_partition, murmur2_many


@given(st.lists(st.binary(min_size=0, max_size=40), max_size=60))
def test_batch_murmur2_equals_kafkas(keys: list[bytes]) -> None:
    assert murmur2_many(keys) == [murmur2(k) for k in keys]


@given(st.binary(min_size=1, max_size=30), st.integers(1, 64))
def test_default_partition_equals_aiokafkas(key: bytes, partitions: int) -> None:
    every = list(range(partitions))
    assert default_partition(key, partitions) == DefaultPartitioner()(key, every, every)
