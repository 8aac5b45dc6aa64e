"""aiokafka clients configured from :class:`~autolabel.settings.KafkaSettings`."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from autolabel.settings import KafkaSettings


class BrokerNotConfigured(RuntimeError):
    """No broker address was given where one is required."""


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Connection options shared by every client (secrets come from the environment)."""
    if not kafka.broker_list:
        raise BrokerNotConfigured(
            "no Kafka broker configured: set AUTOLABEL_KAFKA__BOOTSTRAP_SERVERS=host:port"
            " (or run `autolabel demo`, which starts a local broker)"
        )
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.broker_list,
        "client_id": kafka.client_id,
        "request_timeout_ms": kafka.request_timeout_ms,
        "security_protocol": kafka.security_protocol,
    }
    if kafka.sasl_mechanism:
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = (
            kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
        )
    return options


def make_producer(
    kafka: KafkaSettings,
    *,
    linger_ms: int = 5,
    max_request_size: int = 1_048_576,
    **overrides: Any,
) -> AIOKafkaProducer:
    """A producer that waits for all in-sync replicas: no output is lost once acked."""
    options: dict[str, Any] = {
        **client_options(kafka),
        "acks": "all",
        "linger_ms": linger_ms,
        "max_batch_size": 256 * 1024,
        "max_request_size": max_request_size,
        "enable_idempotence": False,
    }
    return AIOKafkaProducer(**{**options, **overrides})


def make_consumer(
    kafka: KafkaSettings, *topics: str, group_id: str | None, **overrides: Any
) -> AIOKafkaConsumer:
    """A consumer that commits only when told to (after outputs are acked)."""
    options: dict[str, Any] = {
        **client_options(kafka),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": int(kafka.session_timeout_s * 1000),
        "rebalance_timeout_ms": int(kafka.rebalance_timeout_s * 1000),
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
    }
    return AIOKafkaConsumer(*topics, **{**options, **overrides})


def make_admin(kafka: KafkaSettings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**client_options(kafka))
