"""aiokafka clients configured from :class:`~autolabel.settings.KafkaSettings`.

:func:`client_options` is the one recipe (addresses, timeouts, TLS, SASL) for every
client; :func:`explain_failure` turns a failed start into one line that says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.conn import create_conn
from aiokafka.errors import (
    IllegalStateError,
    KafkaConnectionError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from autolabel.settings import KAFKA_VAR, KafkaSettings


def rewind_batch(
    consumer: AIOKafkaConsumer,
    fetched: Mapping[TopicPartition, Sequence[Any]],
    keep: Iterable[TopicPartition] = (),
) -> None:
    """Seek every partition of a fetched batch (but ``keep``, rewound to an earlier
    batch already) back to its first message, so the batch is fetched again; a
    partition revoked meanwhile is skipped (its next owner reads it from the commit)."""
    skip = set(keep)
    for tp, messages in fetched.items():
        if tp not in skip:
            with contextlib.suppress(IllegalStateError):
                consumer.seek(tp, messages[0].offset)


class BrokerNotConfigured(RuntimeError):
    """No broker address was given where one is required."""


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Connection options shared by every client: addresses, timeouts, TLS and SASL.

    Every aiokafka client of the service, its tools and its tests is built from these,
    so one TLS context (:meth:`KafkaSettings.ssl_context`) and one set of SASL
    credentials reach them all; the Faust app gets the same through
    :func:`autolabel.worker.app.broker_credentials`.
    """
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
    if kafka.uses_tls:
        options["ssl_context"] = kafka.ssl_context()
    if kafka.uses_sasl and kafka.sasl_password is not None:  # validated: all three are set
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = kafka.sasl_password.get_secret_value()
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


async def connection_problem(kafka: KafkaSettings) -> str | None:
    """Why no bootstrap broker can be used, in one line; None when one answers.

    A client that cannot bootstrap logs each broker's error and raises a bare
    ``Unable to bootstrap``. This opens one connection per bootstrap address the way
    the clients do (TCP, TLS handshake, API versions, SASL authentication), closes it,
    and says what failed (where, when there are several brokers).
    """
    options = client_options(kafka)
    problems = []
    for broker in kafka.broker_list:
        host, _, port = broker.rpartition(":")
        try:
            conn = await create_conn(
                host.strip("[]"),
                int(port),
                client_id=kafka.client_id,
                request_timeout_ms=kafka.request_timeout_ms,
                ssl_context=options.get("ssl_context"),
                security_protocol=kafka.security_protocol,
                sasl_mechanism=options.get("sasl_mechanism"),
                sasl_plain_username=options.get("sasl_plain_username"),
                sasl_plain_password=options.get("sasl_plain_password"),
            )
        except Exception as exc:  # every way a connection fails is an answer here
            problems.append((broker, _cause(exc, kafka)))
            continue
        conn.close()
        return None
    if len(problems) == 1:
        return problems[0][1]
    return "; ".join(f"{broker}: {problem}" for broker, problem in problems)


async def explain_failure(kafka: KafkaSettings, exc: BaseException) -> str:
    """One line for a client that failed to start: where, and the cause if one is found."""
    problem = await connection_problem(kafka) if kafka.broker_list else None
    return f"cannot use the Kafka cluster at {kafka.bootstrap_servers}: {problem or exc}"


def _cause(exc: BaseException, kafka: KafkaSettings) -> str:
    """What a failed connection means, with the variable to look at."""
    protocol = f"{KAFKA_VAR}SECURITY_PROTOCOL"
    if isinstance(exc, SaslAuthenticationFailed):
        return (
            f"SASL authentication failed ({exc}); check {KAFKA_VAR}SASL_USERNAME,"
            f" {KAFKA_VAR}SASL_PASSWORD and {KAFKA_VAR}SASL_MECHANISM"
        )
    if isinstance(exc, UnsupportedSaslMechanismError):
        return f"{exc}; set {KAFKA_VAR}SASL_MECHANISM to one it offers"
    if isinstance(exc, ssl.SSLCertVerificationError):
        hint = f"{KAFKA_VAR}SSL_CAFILE (the CA that signed it)"
        if "hostname" in str(exc.verify_message).lower():
            hint += f" or {KAFKA_VAR}SSL_CHECK_HOSTNAME"
        return f"the broker's TLS certificate was refused ({exc.verify_message}); check {hint}"
    if isinstance(exc, ssl.SSLError):
        return (
            f"TLS handshake failed ({exc.reason or exc}): is it a TLS listener, and does it"
            f" require a client certificate ({KAFKA_VAR}SSL_CERTFILE, {KAFKA_VAR}SSL_KEYFILE)?"
        )
    if isinstance(exc, KafkaConnectionError | asyncio.TimeoutError | TimeoutError):
        what = "no answer in time" if not isinstance(exc, KafkaConnectionError) else str(exc)
        if kafka.uses_tls and kafka.ssl_certfile is None:
            return (
                f"{what} (is it a TLS listener? does it require a client certificate:"
                f" {KAFKA_VAR}SSL_CERTFILE?)"
            )
        if kafka.uses_tls:
            return f"{what} (is it a TLS listener that accepts this client certificate?)"
        return (
            f"{what} (if the listener expects TLS or SASL, set {protocol}"
            f" to SSL, SASL_SSL or SASL_PLAINTEXT; it is {kafka.security_protocol})"
        )
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is a broker listening there?)"
    return str(exc) or type(exc).__name__
