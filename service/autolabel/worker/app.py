"""The worker process: a Faust app hosting the labeler, the learner, model sync and the ops port.

Faust owns the process, the event loop, the web server and the services' lifecycle. The
Kafka work is done by aiokafka services inside it, because each needs control Faust's
agents do not give:

* the **labeler** (:mod:`.labeler`) is a batched loop, several times faster than a
  per-event Faust stream (see ``bench/``);
* the **learner** (:mod:`.learner`) must seek the feedback partition to the offset inside
  the snapshot it restores when the group assigns it (exactly-once learning), and
  publish a snapshot when the partition is revoked;
* **model sync** (:mod:`.model_sync`) tails the models topic without a group.

All of them run on one asyncio loop; CPU-heavy steps (snapshot pickling, verification)
run in threads.

The HTTP port serves ``/metrics``, ``/healthz`` and ``/readyz`` and nothing else: Faust's
own pages (``/router/``, ``/table/``, ``/stats/``, ``/graph/``, its index) expose the
cluster's topology and internals and are not mounted (:class:`OpsWeb`). Faust reads no
environment variable of its own either (``WEB_PORT``, ``APP_WEB_*``...): the settings
are the only configuration.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

import faust
from faust.web.drivers.aiohttp import Web as AiohttpWeb
from prometheus_client import CollectorRegistry, generate_latest

from autolabel.core.requests import RequestIssuer
from autolabel.core.signing import Signer
from autolabel.core.snapshot import SNAPSHOT_PURPOSE
from autolabel.settings import KafkaSettings, Settings
from autolabel.worker.health import BrokerProbe, readiness
from autolabel.worker.labeler import LabelerService
from autolabel.worker.learner import LearnerService
from autolabel.worker.metrics import Metrics
from autolabel.worker.model_sync import LocalViews, ModelSync
from autolabel.worker.shutdown import Deadline

log = logging.getLogger(__name__)

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4"  # aiohttp sets the charset itself
SHUTDOWN_BUDGET_S = 8.0


class OpsWeb(AiohttpWeb):
    """Faust's aiohttp server without Faust's built-in pages: only the app's own pages."""

    default_blueprints = ()  # /router, /table
    production_blueprints = ()  # the index at /
    debug_blueprints = ()  # /graph, /stats
    optional_blueprints = ()  # /performance (faust-streaming >= 0.15)


class OpsApp(faust.App):
    """A Faust app whose web server is :class:`OpsWeb`."""

    def _new_web(self) -> OpsWeb:
        return OpsWeb(self)


@dataclass
class Worker:
    """The services of one worker process, for the web pages and the tests."""

    settings: Settings
    metrics: Metrics
    sync: ModelSync
    labeler: LabelerService
    learner: LearnerService
    probe: BrokerProbe

    def readiness(self) -> Any:
        return readiness(
            loaded=self.sync.loaded.is_set(),
            broker_up=self.probe.up,
            joined=self.labeler.joined,
            stalled=self.labeler.stalled(),
        )


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def broker_credentials(kafka: KafkaSettings) -> Any:
    """The Faust app's credentials: the TLS context and SASL login the aiokafka clients use.

    None for PLAINTEXT; ``faust.SSLCredentials`` for SSL; ``faust.SASLCredentials``
    (with the TLS context for SASL_SSL) for SASL.

    >>> broker_credentials(KafkaSettings()) is None
    True
    >>> broker_credentials(KafkaSettings(security_protocol="SSL")).protocol.value
    'SSL'
    """
    context = kafka.ssl_context() if kafka.uses_tls else None
    if kafka.uses_sasl and kafka.sasl_password is not None:  # validated: all three are set
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value(),
            mechanism=kafka.sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def create_app(settings: Settings, worker_id: str | None = None) -> tuple[faust.App, Worker]:
    """Wire a Faust app for ``settings``; nothing starts until the worker runs it.

    Raises :class:`~autolabel.settings.MissingKey` when no snapshot key is configured.
    """
    s = settings
    secret = s.snapshot.key_bytes()
    worker_id = worker_id or default_worker_id()
    metrics = Metrics(CollectorRegistry(), max_reviewers=settings.learner.max_reviewers)
    deadline = Deadline(SHUTDOWN_BUDGET_S)
    app = OpsApp(
        s.app_id,
        broker=[f"kafka://{b}" for b in s.kafka.broker_list],
        broker_client_id=s.kafka.client_id,
        broker_credentials=broker_credentials(s.kafka),
        broker_session_timeout=s.kafka.session_timeout_s,
        broker_rebalance_timeout=s.kafka.rebalance_timeout_s,
        broker_request_timeout=s.kafka.request_timeout_ms / 1000,
        topic_partitions=1,
        topic_replication_factor=s.topics.replication_factor,
        store="memory://",
        autodiscover=False,
        web_enabled=True,
        web_bind=s.http.host,
        web_port=s.http.port,
        web_in_thread=False,
        producer_acks=-1,
        logging_config=None,
        env={},  # Faust reads no WEB_PORT, APP_WEB_*...: only these arguments configure it
    )
    views = LocalViews()  # the learner's snapshots, as model sync would decode them
    sync = ModelSync(s, Signer(secret, SNAPSHOT_PURPOSE), metrics, views)
    labeler = LabelerService(s, RequestIssuer(secret), sync, metrics, worker_id, deadline)
    learner = LearnerService(s, secret, metrics, worker_id, deadline, views)
    probe = BrokerProbe(lambda: labeler.producer, metrics)
    worker = Worker(s, metrics, sync, labeler, learner, probe)
    for service in (sync, labeler, learner, probe):
        app.service(service)  # type: ignore[arg-type]  # faust accepts instances too

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(metrics.registry), content_type=METRICS_CONTENT_TYPE)

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        state = worker.readiness()
        view = sync.view
        body = {
            "ready": state.ready,
            "reasons": list(state.reasons),
            "worker": worker_id,
            "model_version": view.model_version,
            "examples_learned": view.learned,
            "feedback_offset": view.feedback_offset,
            "certified": view.certificate.certified and not view.fallback,
            "learner_active": learner.active,
            "hold": labeler.core.hold,
        }
        return web.json(body, status=200 if state.ready else 503)

    return app, worker
