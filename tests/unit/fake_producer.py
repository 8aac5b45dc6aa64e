"""An in-memory stand-in for aiokafka's producer batch API, for the pure loop tests.

It implements what :func:`autolabel.kafka.produce.enqueue_outputs` calls
(``partitions_for``, ``create_batch``, ``send_batch``) and acknowledges each record
batch a few event-loop turns after it was handed over, like a broker round trip, or
fails it with a request timeout when its send number is in ``fail``. The broker tests
(tests/integration) run the same code against Tansu.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Collection
from typing import Any

from aiokafka.errors import RequestTimedOutError


class FakeBatch:
    def __init__(self) -> None:
        self.messages: list[tuple[bytes | None, bytes]] = []

    def append(self, *, key: bytes | None, value: bytes, timestamp: None) -> object:
        self.messages.append((key, value))
        return object()


class FakeProducer:
    """Acknowledges each ``send_batch`` a few loop turns later; fails the ones asked to.

    ``partitions``: partitions of every topic. ``on_event(kind, detail)`` hears every
    ``send``, ``acked`` and ``failed``. ``acked`` holds the values acknowledged, by topic.
    """

    def __init__(
        self,
        *,
        fail: Collection[int] = (),
        partitions: int = 1,
        on_event: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.fail = fail
        self.partitions = partitions
        self.on_event = on_event or (lambda kind, detail: None)
        self.sends = 0
        self.pending: list[asyncio.Future[None]] = []
        self.acked: dict[str, list[bytes]] = defaultdict(list)
        self.tasks: list[asyncio.Task[None]] = []

    @property
    def acked_count(self) -> int:
        return sum(map(len, self.acked.values()))

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        self.sends += 1
        send = self.sends
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        self.on_event("send", (send, topic, len(batch.messages)))

        async def ack() -> None:
            for _ in range(3):  # the round trip: the caller works meanwhile
                await asyncio.sleep(0)
            if send in self.fail:
                self.on_event("failed", send)
                future.set_exception(RequestTimedOutError())
            else:
                self.acked[topic].extend(value for _, value in batch.messages)
                self.on_event("acked", send)
                future.set_result(None)

        self.tasks.append(asyncio.ensure_future(ack()))
        return future
