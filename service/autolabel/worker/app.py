"""The worker process: a Faust app hosting the labeler, the learner and the ops surface.

Faust owns the process, the event loop, the web server and the learner agent
(its group membership elects one active learner over the 1-partition feedback
topic). The labeler's hot path is an aiokafka service inside the same app,
because a batched aiokafka loop is several times faster than a per-event
Faust stream (see DESIGN.md and ``bench/``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import faust
from prometheus_client import CollectorRegistry, generate_latest

from autolabel.core.codec import Rejected, dead_letter_message, decode
from autolabel.core.messages import DeadLetterReason, Feedback
from autolabel.model.classifier import OnlineClassifier
from autolabel.settings import Settings
from autolabel.trust.certified import build_policy
from autolabel.trust.learning import Learner
from autolabel.trust.policy import Policy
from autolabel.worker.labeler import LabelerService
from autolabel.worker.metrics import Metrics

log = logging.getLogger(__name__)

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4"  # aiohttp sets the charset itself


@dataclass
class Components:
    """The state one worker owns; labeler and learner share model and policy in-process."""

    settings: Settings
    metrics: Metrics
    learner: Learner

    @classmethod
    def build(cls, settings: Settings) -> Components:
        learner = Learner(
            settings.model,
            build_policy(settings.policy),
            top_k=settings.labeler.top_k,
            accuracy_window=settings.learner.accuracy_window,
        )
        metrics = Metrics(CollectorRegistry())
        metrics.policy_status(learner.policy.status(), settings.policy.target_precision)
        return cls(settings=settings, metrics=metrics, learner=learner)

    def current(self) -> tuple[OnlineClassifier, Policy]:
        """The model and policy the labeler uses for its next batch."""
        return self.learner.classifier, self.learner.policy


def create_app(settings: Settings, components: Components | None = None) -> faust.App:
    """Wire a Faust app for ``settings``; nothing starts until the worker runs it."""
    c = components or Components.build(settings)
    s = settings
    app = faust.App(
        s.app_id,
        broker=[f"kafka://{b}" for b in s.kafka.broker_list],
        broker_client_id=s.kafka.client_id,
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
    )
    labeler = LabelerService(s, c.current, c.metrics)
    app.service(labeler)  # type: ignore[arg-type]  # faust accepts instances too

    feedback = app.topic(s.topics.feedback, key_serializer="raw", value_serializer="raw")
    dead = app.topic(s.topics.dead_letter, key_serializer="raw", value_serializer="raw")

    @app.agent(feedback, name=f"{s.app_id}.learner")
    async def learn(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            parsed = decode(Feedback, event.value, max_bytes=s.labeler.max_message_bytes)
            if isinstance(parsed, Rejected):
                await _dead_letter(dead, parsed, msg, c.metrics)
                continue
            try:
                result = c.learner.learn(parsed)
            except Exception as exc:  # a model bug must not stop learning from the rest
                log.exception("learning failed for %s", parsed.id)
                rejected = Rejected(
                    DeadLetterReason.PROCESSING_ERROR, f"learning failed: {exc!r}", parsed.id
                )
                await _dead_letter(dead, rejected, msg, c.metrics)
                continue
            m = c.metrics
            m.feedback_learned.labels(source=parsed.source.value).inc()
            m.examples_learned.set(c.learner.classifier.learned())
            m.model_version.set(c.learner.classifier.version)
            m.drifts(result.drift_events)
            m.model_promotions.inc(result.promoted)
            m.policy_status(c.learner.policy.status(), s.policy.target_precision)
            if (accuracy := c.learner.rolling_accuracy) is not None:
                m.prequential_accuracy.set(accuracy)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(c.metrics.registry), content_type=METRICS_CONTENT_TYPE)

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        body = {
            "ready": labeler.ready,
            "model_version": c.learner.classifier.version,
            "examples_learned": c.learner.classifier.learned(),
        }
        return web.json(body, status=200 if labeler.ready else 503)

    return app


async def _dead_letter(topic: Any, rejected: Rejected, msg: Any, metrics: Metrics) -> None:
    key, value = dead_letter_message(rejected, msg, "learner")
    await topic.send(key=key, value=value)
    metrics.dead_letters.labels(stage="learner", reason=rejected.reason.value).inc()
