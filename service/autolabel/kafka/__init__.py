"""Kafka I/O: configured aiokafka clients (:mod:`.clients`), topic creation and checks
(:mod:`.topics`) and batched, partition-aware produce (:mod:`.produce`)."""
