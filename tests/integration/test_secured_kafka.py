"""TLS and SASL for real: clients, the CLI and workers against secured local clusters.

Each cluster (see ``secured.py``) is a broker that advertises only the port of a
proxy in front of it: socat for TLS, our ``SaslProxy`` for SASL. So a client that
works at all has gone through the proxy for every connection, and each test also
checks the proxy saw it: socat's count of TLS sessions, the SASL proxy's count of
authenticated connections per mechanism. The negative tests show the proxies refuse
what they should (plaintext to TLS, an untrusted CA, no client certificate, a
wrong password), and that the commands say so in one line.

The two workers cover every client of the service: the labeler, the learner, model
sync and the Faust app, whose own producer connects at start (a worker whose Faust
app lacks the credentials exits before it is ready on these clusters).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed
from kafka_support import (
    all_ids_seen,
    blobs,
    collect,
    feedback_for,
    keyed,
    produce,
    run_cli,
    wait_for_metric,
)
from secured import (
    KEY_PASSWORD,
    SASL_PASSWORD,
    Certificates,
    SecuredCluster,
    make_certificates,
    sasl_cluster,
    tls_cluster,
)

from autolabel.core.messages import FeedbackSource
from autolabel.kafka.clients import (
    client_options,
    connection_problem,
    make_admin,
    make_consumer,
    make_producer,
)
from autolabel.settings import KafkaSettings, Settings
from autolabel.tools.harness import WorkerProcess

pytestmark = pytest.mark.integration

WRONG_PASSWORD = "not-the-sasl-password"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def _cluster(factory, certs: Certificates, tmp: pytest.TempPathFactory, name: str, **kw):
    with factory(certs, tmp.mktemp(name), **kw) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def tls(certs, tmp_path_factory) -> Iterator[SecuredCluster]:
    yield from _cluster(tls_cluster, certs, tmp_path_factory, "tls", mutual=False)


@pytest.fixture(scope="module")
def mtls(certs, tmp_path_factory) -> Iterator[SecuredCluster]:
    yield from _cluster(tls_cluster, certs, tmp_path_factory, "mtls", mutual=True)


@pytest.fixture(scope="module")
def sasl(certs, tmp_path_factory) -> Iterator[SecuredCluster]:
    yield from _cluster(sasl_cluster, certs, tmp_path_factory, "sasl", tls=False)


@pytest.fixture(scope="module")
def sasl_ssl(certs, tmp_path_factory) -> Iterator[SecuredCluster]:
    yield from _cluster(sasl_cluster, certs, tmp_path_factory, "sasl-ssl", tls=True)


def kafka_of(cluster: SecuredCluster, **changes: object) -> KafkaSettings:
    settings = {**cluster.kafka, **changes}
    return KafkaSettings(bootstrap_servers=cluster.bootstrap_servers, **settings)


async def round_trip(kafka: KafkaSettings) -> list[bytes]:
    """Create a topic (admin), write two messages (producer), read them back (consumer)."""
    topic = f"secured-{uuid.uuid4().hex[:8]}"
    admin = make_admin(kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        brokers = {(b["host"], b["port"]) for b in (await admin.describe_cluster())["brokers"]}
    finally:
        await admin.close()
    host, _, port = kafka.bootstrap_servers.rpartition(":")
    assert brokers == {(host, int(port))}, "the broker must advertise the proxy alone"
    await produce(kafka, topic, [(b"k1", b"one"), (b"k2", b"two")])
    consumer = make_consumer(kafka, group_id=None)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.seek_to_beginning()
        batch = await consumer.getmany(timeout_ms=10_000)
    finally:
        await consumer.stop()
    return [m.value for messages in batch.values() for m in messages]


async def refused(kafka: KafkaSettings) -> str:
    """The client cannot start; the explanation of why."""
    producer = make_producer(kafka)
    with pytest.raises(KafkaConnectionError):
        await producer.start()
    await producer.stop()
    problem = await connection_problem(kafka)
    assert problem is not None
    return problem


def one_line_error(stderr: str, command: str) -> str:
    """The command's own error line; no traceback, nothing secret."""
    assert "Traceback" not in stderr, stderr
    assert SASL_PASSWORD not in stderr and WRONG_PASSWORD not in stderr
    assert KEY_PASSWORD not in stderr
    mine = [line for line in stderr.splitlines() if line.startswith(f"autolabel {command}: ")]
    assert len(mine) == 1, stderr
    return mine[0]


# --------------------------------------------------------------------------- TLS


async def test_tls_round_trip_goes_through_the_tls_proxy(tls: SecuredCluster) -> None:
    before = tls.proxy.sessions()
    assert await round_trip(kafka_of(tls)) == [b"one", b"two"]
    assert tls.proxy.sessions() >= before + 3  # admin, producer, consumer at least


async def test_plaintext_to_the_tls_port_is_refused_and_explained(tls: SecuredCluster) -> None:
    problem = await refused(KafkaSettings(bootstrap_servers=tls.bootstrap_servers))
    assert "closed" in problem and "AUTOLABEL_KAFKA__SECURITY_PROTOCOL" in problem


async def test_a_broker_signed_by_another_ca_is_refused(
    tls: SecuredCluster, certs: Certificates
) -> None:
    problem = await refused(kafka_of(tls, ssl_cafile=certs.other_ca))
    assert "TLS certificate was refused" in problem and "AUTOLABEL_KAFKA__SSL_CAFILE" in problem


async def test_mutual_tls_needs_the_client_certificate(mtls: SecuredCluster) -> None:
    before = mtls.proxy.sessions()
    assert await round_trip(kafka_of(mtls)) == [b"one", b"two"]  # encrypted key + password
    assert mtls.proxy.sessions() >= before + 3
    no_certificate = {"ssl_certfile": None, "ssl_keyfile": None, "ssl_keyfile_password": None}
    problem = await refused(kafka_of(mtls, **no_certificate))
    assert "AUTOLABEL_KAFKA__SSL_CERTFILE" in problem


def test_topics_command_over_tls(tls: SecuredCluster) -> None:
    settings = tls.settings()
    env = settings.to_env()
    before = tls.proxy.sessions()
    created = run_cli("topics", env=env)
    assert created.returncode == 0, created.stdout + created.stderr
    check = run_cli("topics", "--check", env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert settings.topics.records in check.stdout and "PROBLEM" not in check.stdout
    assert tls.proxy.sessions() > before

    env["AUTOLABEL_KAFKA__SECURITY_PROTOCOL"] = "PLAINTEXT"
    del env["AUTOLABEL_KAFKA__SSL_CAFILE"], env["AUTOLABEL_KAFKA__SSL_CHECK_HOSTNAME"]
    plain = run_cli("topics", "--check", env=env)
    assert plain.returncode == 2
    line = one_line_error(plain.stderr, "topics")
    assert f"cannot use the Kafka cluster at {tls.bootstrap_servers}" in line


# --------------------------------------------------------------------------- SASL


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_sasl_round_trip(sasl: SecuredCluster, mechanism: str) -> None:
    before = sasl.proxy.authenticated[mechanism]
    assert await round_trip(kafka_of(sasl, sasl_mechanism=mechanism)) == [b"one", b"two"]
    assert sasl.proxy.authenticated[mechanism] >= before + 3
    assert sasl.proxy.refused == 0  # nothing tried to skip authentication


async def test_sasl_over_tls_round_trip(sasl_ssl: SecuredCluster) -> None:
    before = sasl_ssl.proxy.authenticated["SCRAM-SHA-512"]
    assert await round_trip(kafka_of(sasl_ssl)) == [b"one", b"two"]
    assert sasl_ssl.proxy.authenticated["SCRAM-SHA-512"] >= before + 3


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
async def test_a_wrong_password_fails_authentication(sasl: SecuredCluster, mechanism: str) -> None:
    kafka = kafka_of(sasl, sasl_mechanism=mechanism, sasl_password=WRONG_PASSWORD)
    failed = sasl.proxy.failed[mechanism]
    options = client_options(kafka)
    host, _, port = sasl.bootstrap_servers.rpartition(":")
    with pytest.raises(SaslAuthenticationFailed):
        await create_conn(
            host,
            int(port),
            security_protocol=options["security_protocol"],
            sasl_mechanism=options["sasl_mechanism"],
            sasl_plain_username=options["sasl_plain_username"],
            sasl_plain_password=options["sasl_plain_password"],
        )
    problem = await refused(kafka)
    assert "SASL authentication failed" in problem and WRONG_PASSWORD not in problem
    assert sasl.proxy.failed[mechanism] >= failed + 2


def test_topics_and_worker_say_in_one_line_that_authentication_failed(
    sasl: SecuredCluster,
) -> None:
    env = sasl.settings().to_env()
    env["AUTOLABEL_KAFKA__SASL_PASSWORD"] = WRONG_PASSWORD
    for command in ("topics", "worker"):
        result = run_cli(command, env=env, timeout=60)
        assert result.returncode == 2, result.stderr
        line = one_line_error(result.stderr, command)
        assert "SASL authentication failed" in line and "AUTOLABEL_KAFKA__SASL_PASSWORD" in line


# --------------------------------------------------------------------------- workers


async def label_and_learn(worker: WorkerProcess, settings: Settings) -> None:
    """Feedback is learned (learner), the model reaches the labeler (model sync), and
    records come out labelled or sent to review (labeler), all on the secured cluster."""
    train, fresh = blobs("train", 300, seed=1), blobs("fresh", 40, seed=2)
    seed = feedback_for(train, FeedbackSource.SEED)
    await produce(settings.kafka, settings.topics.feedback, keyed(seed))
    await wait_for_metric(
        worker,
        lambda m: (
            m.get("autolabel_model_examples_learned") >= len(train)
            and m.get("autolabel_snapshot_feedback_offset") >= len(train)
        ),
        what="the feedback learned and the model synced",
    )
    records = [r for r, _ in fresh]
    await produce(settings.kafka, settings.topics.records, keyed(records))
    out = await collect(settings, all_ids_seen(r.id for r in records), worker=worker)
    assert out.dead == []
    reasons = Counter(x.reason.value for x in out.labels + out.reviews)
    assert len(out.labels) > 0, f"a trained model labels confident records: {reasons}"
    assert {x.model_version for x in out.labels + out.reviews} == {len(train)}


POLICY = {"mode": "fixed", "cold_start_examples": 20, "confidence_threshold": 0.8}


async def test_a_worker_over_mutual_tls_labels_and_learns(mtls: SecuredCluster, workers) -> None:
    before = mtls.proxy.sessions()
    settings = mtls.settings(policy=POLICY)
    worker = workers(settings)
    await label_and_learn(worker, settings)
    assert mtls.proxy.sessions() >= before + 5
    log = worker.log_path.read_text()
    assert KEY_PASSWORD not in log


async def test_a_worker_over_sasl_ssl_scram_labels_and_learns(
    sasl_ssl: SecuredCluster, workers
) -> None:
    proxy = sasl_ssl.proxy
    before = proxy.authenticated["SCRAM-SHA-512"]
    settings = sasl_ssl.settings(policy=POLICY)
    worker = workers(settings)
    await label_and_learn(worker, settings)
    assert proxy.authenticated["SCRAM-SHA-512"] >= before + 5
    assert proxy.failed.total() == 0 and proxy.refused == 0
    assert SASL_PASSWORD not in worker.log_path.read_text()
