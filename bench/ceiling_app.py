"""The ceiling: a raw aiokafka pass-through, the labeler's loop with no model.

Exactly the plumbing of :mod:`autolabel.worker.labeler` — the same client
factories (acks=all, linger, fetch sizes), ``getmany`` of up to 1000 records,
the same batched produce (``autolabel.kafka.produce.enqueue_outputs``), one batch in
flight (its acks awaited and its offsets committed after the next batch is fetched,
before the next batch is handed over) — but each input's bytes go out unchanged: no
decode, no predict, no encode, no metrics.

    python bench/ceiling_app.py BOOTSTRAP IN_TOPIC OUT_TOPIC GROUP READY_FILE
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from autolabel.kafka.clients import make_consumer, make_producer
from autolabel.kafka.produce import enqueue_outputs
from autolabel.settings import load_settings


def announce(ready: Path) -> bool:
    """Tell the benchmark we own partitions (from now on it may freeze us)."""
    ready.write_text(str(os.getpid()))
    return True


async def settle(consumer: Any, acks: asyncio.Future[Any], offsets: dict[Any, int]) -> None:
    await acks
    await consumer.commit(offsets)


async def run(bootstrap: str, in_topic: str, out_topic: str, group: str, ready: Path) -> None:
    # The service's labeler settings (AUTOLABEL_LABELER__* from the environment, else defaults).
    settings = load_settings(kafka={"bootstrap_servers": bootstrap, "client_id": "bench-ceiling"})
    kafka, labeler = settings.kafka, settings.labeler
    producer = make_producer(kafka, linger_ms=labeler.linger_ms)
    consumer = make_consumer(kafka, in_topic, group_id=group)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await producer.start()
    await consumer.start()
    announced = False
    inflight: asyncio.Future[None] | None = None  # acks, then commit: a task, as the labeler's
    try:
        while not stop.is_set():
            fetched = await consumer.getmany(
                timeout_ms=labeler.batch_timeout_ms or 1, max_records=labeler.batch_max_records
            )
            if not announced and consumer.assignment():
                announced = announce(ready)
            if inflight is not None:  # the previous batch's outputs go first
                await inflight
                inflight = None
            if not fetched:
                continue
            acks = await enqueue_outputs(
                producer,
                ((out_topic, m.key, m.value) for messages in fetched.values() for m in messages),
            )
            offsets = {tp: ms[-1].offset + 1 for tp, ms in fetched.items()}
            inflight = asyncio.ensure_future(settle(consumer, acks, offsets))
    finally:
        await consumer.stop()
        await producer.stop()


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    bootstrap, in_topic, out_topic, group, ready = sys.argv[1:]
    asyncio.run(run(bootstrap, in_topic, out_topic, group, Path(ready)))
