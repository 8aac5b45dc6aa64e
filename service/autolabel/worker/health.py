"""Is this worker useful right now? Broker reachability and readiness.

``/readyz`` is 200 when the newest snapshot was loaded, the brokers answer, the labeler
joined its group and is not stalled; it turns 503 by itself when one of these stops
holding and back to 200 when it holds again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from mode import Service

from autolabel.worker.metrics import Metrics

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 2.0
PROBE_TIMEOUT_S = 3.0


class BrokerProbe(Service):
    """Asks the brokers for metadata every few seconds through an existing client."""

    def __init__(self, producer: Any, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._producer = producer  # returns the started producer (or None before start)
        self.metrics = metrics
        self.up = False
        self.changed_at = time.monotonic()

    def _set(self, up: bool) -> None:
        if up != self.up:
            self.changed_at = time.monotonic()
            log.log(
                logging.INFO if up else logging.WARNING,
                "brokers %s",
                "reachable again" if up else "unreachable: /readyz answers 503",
            )
        self.up = up
        self.metrics.broker_reachable.set(1 if up else 0)

    @Service.task
    async def _probe(self) -> None:
        while not self.should_stop:
            producer: AIOKafkaProducer | None = self._producer()
            if producer is not None:
                try:
                    ok = await asyncio.wait_for(
                        producer.client.fetch_all_metadata(), PROBE_TIMEOUT_S
                    )
                    self._set(ok is not None and bool(ok.brokers()))
                except Exception:  # any failure to answer is "unreachable"
                    self._set(False)
            await self.sleep(PROBE_INTERVAL_S)


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reasons: tuple[str, ...]


def readiness(*, loaded: bool, broker_up: bool, joined: bool, stalled: bool) -> Readiness:
    """Why a worker is not ready (empty when it is).

    >>> readiness(loaded=True, broker_up=True, joined=True, stalled=False).ready
    True
    >>> readiness(loaded=False, broker_up=False, joined=True, stalled=False).reasons
    ('no snapshot loaded yet', 'brokers unreachable')
    """
    reasons = []
    if not loaded:
        reasons.append("no snapshot loaded yet")
    if not broker_up:
        reasons.append("brokers unreachable")
    if not joined:
        reasons.append("labeler has not joined its group")
    if stalled:
        reasons.append("labeler stalled")
    return Readiness(not reasons, tuple(reasons))
