"""Replay a labeled file into the records topic (``autolabel produce``).

Rows become :class:`~autolabel.core.messages.Record` JSON keyed by record id; the
label column never leaves the machine. Sends are pipelined but bounded: after
every ``max_in_flight`` sends the producer's acknowledgements are awaited, so
memory stays flat and a failed send stops the replay with an error instead of
losing records silently. :func:`send_records` / :func:`send_messages` are the
reusable parts (the demo sends through them too).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterable, Callable, Iterable
from pathlib import Path

from aiokafka import AIOKafkaProducer
from rich.console import Console
from rich.markup import escape
from rich.progress import ProgressColumn, Task
from rich.text import Text

from autolabel.core.codec import encode
from autolabel.core.messages import Record
from autolabel.kafka.clients import make_producer
from autolabel.kafka.topics import ensure_topics
from autolabel.settings import Settings
from autolabel.tools.progress import progress_bar
from autolabel.tools.tabular_files import DataFileError, Example, iter_examples, scan

DEFAULT_MAX_IN_FLIGHT = 1000
MAX_WARNINGS = 20  # per replay; the rest are only counted

Message = tuple[bytes | None, bytes]
"""A message to produce: ``(key, value)``."""


class TooManyBadRows(ValueError):
    """More rows were skipped than ``--max-bad-rows`` allows (each was reported)."""


class Pacer:
    """Spaces events at ``rate`` per second on average (no catching up in bursts
    beyond what was lost to scheduling); ``None`` means as fast as possible.

    >>> Pacer(4.0).delay(sent=2, elapsed=0.1)  # message 2 is due at 0.5 s
    0.4
    >>> Pacer(4.0).delay(sent=2, elapsed=0.9), Pacer(None).delay(sent=10**6, elapsed=0.0)
    (0.0, 0.0)
    """

    def __init__(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive (got {rate}); omit it for no limit")
        self.rate = rate

    def delay(self, sent: int, elapsed: float) -> float:
        """Seconds to wait before sending message number ``sent`` (0-based)."""
        if self.rate is None:
            return 0.0
        return round(max(sent / self.rate - elapsed, 0.0), 9)


async def send_messages(
    producer: AIOKafkaProducer,
    topic: str,
    messages: Iterable[Message] | AsyncIterable[Message],
    *,
    rate: float | None = None,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    on_sent: Callable[[int], None] | None = None,
) -> int:
    """Produce ``(key, value)`` pairs to ``topic``; return how many were acknowledged.

    Parameters
    ----------
    producer
        A started producer.
    rate
        Messages per second, or ``None`` for as fast as the broker acknowledges.
    max_in_flight
        Await the acknowledgements after this many unacknowledged sends.
    on_sent
        Called with the running count after each message is handed to the producer.

    Raises
    ------
    aiokafka.errors.KafkaError
        A send failed after the producer's retries; nothing after it was sent.
    """
    if max_in_flight < 1:
        raise ValueError(f"max_in_flight must be at least 1 (got {max_in_flight})")
    pacer = Pacer(rate)
    pending: list[asyncio.Future[object]] = []
    started = time.monotonic()
    sent = acked = 0

    async def drain() -> None:
        nonlocal acked
        await asyncio.gather(*pending)
        acked += len(pending)
        pending.clear()

    async def send(key: bytes | None, value: bytes) -> None:
        nonlocal sent
        wait = pacer.delay(sent, time.monotonic() - started)
        if wait > 0:
            await asyncio.sleep(wait)
        pending.append(await producer.send(topic, value, key=key))
        sent += 1
        if on_sent is not None:
            on_sent(sent)
        if len(pending) >= max_in_flight:
            await drain()

    try:
        if isinstance(messages, AsyncIterable):
            async for key, value in messages:
                await send(key, value)
        else:
            for key, value in messages:
                await send(key, value)
        await producer.flush()
        await drain()
    finally:
        for future in pending:  # on error or cancellation: retrieve, never leak warnings
            if future.done() and not future.cancelled():
                future.exception()
    return acked


async def send_records(
    producer: AIOKafkaProducer,
    topic: str,
    records: Iterable[Record],
    *,
    rate: float | None = None,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    on_sent: Callable[[int], None] | None = None,
) -> int:
    """Produce records as JSON keyed by record id; return how many were acknowledged.

    See :func:`send_messages` for the parameters.
    """
    return await send_messages(
        producer,
        topic,
        ((r.id.encode(), encode(r)) for r in records),
        rate=rate,
        max_in_flight=max_in_flight,
        on_sent=on_sent,
    )


class _RateColumn(ProgressColumn):
    """Rows per second over the whole replay."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.completed / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:,.0f} rows/s", style="progress.data.speed")


async def produce_file(settings: Settings, args: argparse.Namespace) -> int:
    """``autolabel produce``: replay a CSV/JSONL file; return how many records were sent.

    ``args`` carries ``file``, ``label_column``, ``id_column``, ``text_column``,
    ``embedding_column``, ``limit``, ``rate`` and ``max_bad_rows`` (see ``autolabel
    produce --help``). Rows that cannot become records are reported (row number and
    reason) and skipped; when more than ``max_bad_rows`` were, or when nothing was
    sent, the run raises :class:`TooManyBadRows` after the replay. Whole-file problems
    (and a file without data rows: nothing to send) raise
    :class:`~autolabel.tools.tabular_files.DataFileError` before Kafka is touched.
    """
    path = Path(args.file)
    limit: int | None = args.limit
    rate: float | None = args.rate
    max_bad_rows: int = getattr(args, "max_bad_rows", 0)
    if limit is not None and limit < 0:
        raise ValueError(f"--limit must be 0 or more (got {limit})")
    if rate is not None and rate <= 0:
        raise ValueError(f"--rate must be positive (got {rate}); omit it for no limit")
    console = Console(stderr=True)
    examples = iter_examples(  # checks the file and its columns before touching Kafka
        path,
        label_column=args.label_column,
        id_column=args.id_column,
        text_column=args.text_column,
        embedding_column=args.embedding_column,
        limit=limit,
        types=(found := scan(path)).column_types,
    )
    total = min(found.rows, limit) if limit is not None else found.rows
    if total == 0:
        why = "--limit 0" if found.rows else "no data rows"
        raise DataFileError(f"{why}: nothing to send", path=path)

    for status in await ensure_topics(settings):
        if status.problem:
            console.print(f"[yellow]warning:[/] topic {status.problem}")

    skipped = 0

    def records() -> Iterable[Record]:
        nonlocal skipped
        for item in examples:
            progress.advance(task_id)  # rows read, whether sent or skipped
            if isinstance(item, Example):
                yield item.record
                continue
            skipped += 1
            if skipped <= MAX_WARNINGS:
                progress.console.print(f"[yellow]skipped:[/] {escape(str(item))}")
            elif skipped == MAX_WARNINGS + 1:
                progress.console.print("[yellow]more rows skipped; counting the rest quietly")

    producer = make_producer(settings.kafka)
    await producer.start()
    started = time.monotonic()
    try:
        with progress_bar(console, _RateColumn()) as progress:
            task_id = progress.add_task(f"{path.name} → {settings.topics.records}", total=total)
            sent = await send_records(producer, settings.topics.records, records(), rate=rate)
    finally:
        await producer.stop()
    seconds = time.monotonic() - started
    console.print(
        f"replayed {sent + skipped} rows of {path} in {seconds:.1f} s"
        f" ({(sent + skipped) / max(seconds, 1e-9):,.0f} rows/s): {sent} sent as records"
        f" to {settings.topics.records}, {skipped} skipped" + (" (see above)" if skipped else "")
    )
    if skipped > max_bad_rows or sent == 0:
        allowed = f"--max-bad-rows is {max_bad_rows}" if skipped > max_bad_rows else "none sent"
        raise TooManyBadRows(
            f"{skipped} of {sent + skipped} rows of {path} skipped ({allowed}): fix the rows"
            " reported above"
            + (", or allow them with --max-bad-rows N" if sent else "")
            + f"; {sent} records were sent"
        )
    return sent
