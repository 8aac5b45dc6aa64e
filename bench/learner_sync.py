"""The learner and model sync: feedback/s with snapshots on, snapshot cost per model kind,
and how long a correction takes to reach every labeler.

    python bench/learner_sync.py [--only learner,snapshots,sync] [--json OUT]

One local broker (Tansu) for three parts, each on its own topics:

learner    one worker per tabular model setting (default ``auto``: every candidate
           learns; and ``softmax`` alone), SIGSTOPped; N feedback messages go to its
           feedback topic (plain ``source=review`` answers, then answers echoing signed
           request ids built with ``autolabel.review.answer``); SIGCONT. feedback/s = N /
           (arrival of the first snapshot on the models topic that covers all N -
           SIGCONT), default snapshot settings (every 0.5 s when something changed, at
           least every 5,000 examples).
snapshots  in-process, no worker: a TrustController per model kind learns E examples
           (tabular: the throughput bench's data set; text and embeddings: synthetic),
           then encode_snapshot / decode_snapshot are timed and the snapshot is published
           to the broker (send + ack) like the learner does.
sync       W workers of one deployment (same settings, their own HTTP ports); one
           feedback message at a time, spaced out, half of them while records stream
           through the labelers: latency = the moment every worker's /readyz
           feedback_offset covers the message - the message's produce ack.

Method and how to read the results: bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import math
import os
import pickle
import secrets
import signal
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from rich.console import Console
from rich.table import Table

from autolabel.core.codec import encode
from autolabel.core.messages import (
    Feedback,
    FeedbackSource,
    Record,
    ReviewReason,
    ReviewRequest,
)
from autolabel.core.requests import Admitted, RequestIssuer
from autolabel.core.signing import Signer
from autolabel.core.snapshot import (
    SNAPSHOT_PURPOSE,
    SnapshotHeader,
    SnapshotRejected,
    decode_snapshot,
    encode_snapshot,
    verify_header,
)
from autolabel.kafka.clients import make_producer
from autolabel.kafka.snapshots import publish
from autolabel.kafka.topics import ensure_topics
from autolabel.review import answer
from autolabel.settings import ModelSettings, Settings, SettingsError, load_settings
from autolabel.tools.harness import WorkerProcess, WorkerProcessError
from autolabel.tools.local_broker import LocalBroker, free_port
from autolabel.trust.controller import TrustController
from autolabel.worker.learner import controller_config
from throughput import (
    CLASSES,
    LIVE,
    ROOT,
    BenchError,
    DataSet,
    bulk_produce,
    bulk_producer,
    check,
    cpu_seconds,
    freeze,
    generate,
    launch,
    machine_info,
    proc_status,
    resume,
    sync_state,
)

BENCH = Path(__file__).resolve().parent
PARTS = ("learner", "snapshots", "sync")
MODEL_KINDS: tuple[tuple[str, str], ...] = (
    ("tabular", "softmax"),
    ("tabular", "hoeffding_adaptive_tree"),
    ("tabular", "arf"),
    ("tabular", "naive_bayes"),
    ("text", "tfidf_nb"),
    ("text", "bow_nb"),
    ("text", "tfidf_linear"),
    ("embedding", "softmax"),
    ("embedding", "naive_bayes"),
    ("tabular", "auto"),
    ("text", "auto"),
    ("embedding", "auto"),
)
SINGLE = {"tabular": "softmax", "text": "bow_nb", "embedding": "softmax"}
"""The other kinds' setting when one kind's model is measured: one model each, so the
controller holds exactly the candidates of the kind measured (a kind set to ``auto``
makes every candidate learn; unused kinds build nothing)."""
GROWING = ("hoeffding_adaptive_tree", "arf")  # tree/forest: measured at more sizes
WARMUP_EXAMPLES = 500
LEARNER_TARGET = 5_000.0  # feedback/s, the issue's bar
PREVIOUS = {
    "source": "issue 6: the learner before snapshots and model sync",
    "learner_feedback_per_s": 4_950.0,
}
console = Console(stderr=True)


def load(**arguments: Any) -> Settings:
    try:
        return load_settings(**arguments)
    except SettingsError as exc:
        raise BenchError(str(exc)) from None


def deployment(bootstrap: str, base: str, key: str, **sections: Any) -> Settings:
    """Settings of one bench deployment: its own app id and topics, this run's key."""
    names = ("records", "labels", "review", "feedback", "dead_letter", "models", "signals")
    return load(
        app_id=base.replace(".", "-"),
        kafka={"bootstrap_servers": bootstrap},
        topics={n: f"{base}.{n.replace('_', '-')}" for n in names},
        http={"host": "127.0.0.1", "port": free_port()},
        snapshot={"key": key},
        **sections,
    )


def on_port(settings: Settings, port: int) -> Settings:
    """The same deployment's settings with another HTTP port (a second worker)."""
    return settings.model_copy(update={"http": settings.http.model_copy(update={"port": port})})


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    a = np.array(values)
    return {
        "n": len(values),
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
        "mean": float(a.mean()),
    }


# --------------------------------------------------------------------------- models topic


@dataclass(frozen=True, slots=True)
class Seen:
    arrival: float  # time.time() when the bench's consumer received it
    offset: int
    size: int
    header: SnapshotHeader


class ModelsTail:
    """Reads every snapshot on a models topic as it arrives (fetch wait 10 ms), checks its
    signature and header, and stamps its arrival: when the learner's work became visible."""

    def __init__(self, bootstrap: str, topic: str, signer: Signer) -> None:
        self.tp = TopicPartition(topic, 0)
        self.signer = signer
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=10,
            max_partition_fetch_bytes=64 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        self.seen: list[Seen] = []
        self.rejected = 0
        self._new = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.assign([self.tp])
        await self.consumer.seek_to_beginning(self.tp)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()

    async def _run(self) -> None:
        while True:
            batch = await self.consumer.getmany(self.tp, timeout_ms=50, max_records=64)
            now = time.time()
            for m in batch.get(self.tp, []):
                if m.value is None:
                    continue
                try:
                    header, _ = verify_header(m.value, self.signer)
                except SnapshotRejected:
                    self.rejected += 1
                    continue
                self.seen.append(Seen(now, m.offset, len(m.value), header))
                self._new.set()

    def covering(self, offset: int) -> Seen | None:
        """The first snapshot seen whose feedback offset is at least ``offset``."""
        return next((s for s in self.seen if s.header.feedback_offset >= offset), None)

    async def wait_covering(
        self, offset: int, timeout_s: float, alive: Callable[[], None] = lambda: None
    ) -> Seen:
        deadline = time.monotonic() + timeout_s
        while (found := self.covering(offset)) is None:
            alive()
            if time.monotonic() > deadline:
                newest = self.seen[-1].header.feedback_offset if self.seen else None
                raise BenchError(
                    f"no snapshot covering feedback offset {offset} after {timeout_s:.0f}s"
                    f" (newest covers {newest})"
                )
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), 0.2)
        return found


# --------------------------------------------------------------------------- data


def feedback_messages(data: DataSet, kind: str, issuer: RequestIssuer) -> DataSet:
    """One answer per record of ``data``: keys are record ids, values encoded Feedback.

    ``kind`` "review": plain ``source=review`` answers (no request id; learned as review,
    weight 1). "request_id": answers to an ``uncertain`` review request whose signed
    request id the bench issues with the deployment's key, built with
    :func:`autolabel.review.answer` (verified, deduplicated by the learner).
    """
    values = []
    for key, feats, label in zip(data.keys, data.features, data.labels, strict=True):
        rid = key.decode()
        record = Record(id=rid, features=feats)
        if kind == "review":
            fb = Feedback(
                id=rid, record=record, label=label, source=FeedbackSource.REVIEW, reviewer="bench"
            )
        else:
            request = ReviewRequest(
                id=rid,
                request_id=issuer.issue(
                    record, ReviewReason.UNCERTAIN, audit_rate=0.0, model_version=0, epoch=0
                ),
                record=record,
                reason=ReviewReason.UNCERTAIN,
                priority=0.5,
                model_version=0,
            )
            fb = answer(request, label, reviewer="bench")
        values.append(encode(fb))
    return DataSet(data.keys, values, data.labels, [])


def seed_messages(data: DataSet) -> list[tuple[bytes, bytes]]:
    out = []
    for key, feats, label in zip(data.keys, data.features, data.labels, strict=True):
        rid = key.decode()
        fb = Feedback(
            id=rid,
            record=Record(id=rid, features=feats),
            label=label,
            source=FeedbackSource.SEED,
            reviewer="bench",
        )
        out.append((key, encode(fb)))
    return out


class TextStream:
    """Synthetic short texts in 4 classes: Zipf-distributed common words (2,000), 30%
    class words (200 per class), and 5% one-off tokens (ids, numbers, typos), so the
    vocabulary keeps growing the way real text's does."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        weights = 1.0 / np.arange(1, 2001)
        self.p = weights / weights.sum()

    def __call__(self, y: int) -> str:
        rng = self.rng
        n = int(rng.integers(8, 21))
        kinds = rng.random(n)
        common = rng.choice(2000, size=n, p=self.p)
        words = []
        for i in range(n):
            if kinds[i] < 0.30:
                words.append(f"{CLASSES[y]}{rng.integers(200)}")
            elif kinds[i] < 0.95:
                words.append(f"w{common[i]}")
            else:
                words.append(f"x{rng.integers(1_000_000_000)}")
        return " ".join(words)


CHUNK = 1000


def example_stream(kind: str, n: int, seed: int, dim: int) -> list[tuple[Record, str]]:
    """n labeled records of one kind: tabular from the throughput bench's generator, text
    from :class:`TextStream`, embeddings Gaussian around 4 class centres (sd 1.5).

    Drawn in chunks of 1,000 with a seed each, so the first k examples are the same
    whatever n: a model measured at 2,000 and at 10,000 examples saw the same 2,000 first.
    """
    out: list[tuple[Record, str]] = []
    centres = np.random.default_rng(11).normal(0.0, 1.0, (len(CLASSES), dim))
    for c in range(math.ceil(n / CHUNK)):
        size, base, chunk_seed = min(CHUNK, n - c * CHUNK), c * CHUNK, seed + 7919 * c
        if kind == "tabular":
            data = generate(size, chunk_seed, "s", keep_features=True)
            out += [
                (Record(id=f"s{base + i:08d}", features=f), y)
                for i, (f, y) in enumerate(zip(data.features, data.labels, strict=True))
            ]
            continue
        rng = np.random.default_rng(chunk_seed)
        ys = rng.integers(0, len(CLASSES), size).tolist()
        if kind == "text":
            text = TextStream(chunk_seed)
            out += [
                (Record(id=f"s{base + i:08d}", text=text(y)), CLASSES[y]) for i, y in enumerate(ys)
            ]
            continue
        x = np.round(centres[ys] + rng.normal(0.0, 1.5, (size, dim)), 4).tolist()
        out += [
            (Record(id=f"s{base + i:08d}", embedding=v), CLASSES[y])
            for i, (v, y) in enumerate(zip(x, ys, strict=True))
        ]
    return out


# --------------------------------------------------------------------------- part: learner


async def wait_learner(worker: WorkerProcess, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        check(worker)
        if (await sync_state(worker))["learner_active"]:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"{worker.name}: no active learner after {timeout_s:.0f}s")
        await asyncio.sleep(0.1)


async def learner_part(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """One worker per tabular model setting (``--learner-models``), each drained twice."""
    console.rule("[bold]learner: feedback/s with snapshots on")
    models = [m.strip() for m in args.learner_models.split(",") if m.strip()]
    out: dict[str, Any] = {"feedback_per_run": args.feedback, "models": models, "runs": []}
    for i, model in enumerate(models):
        result = await learner_model(args, ctx, model, i)
        out["runs"] += result.pop("runs")
        out.setdefault("settings", {})[model] = result["settings"]
    return out


async def learner_model(
    args: argparse.Namespace, ctx: Context, model: str, index: int
) -> dict[str, Any]:
    # A named model is one candidate: the other kinds named too (with text and embeddings
    # left auto, a tabular model would be trained once per text/embedding candidate).
    models = {"tabular": model} if model == "auto" else {**SINGLE, "tabular": model}
    settings = deployment(ctx.bootstrap, f"{ctx.run_id}.learner{index}", ctx.key, model=models)
    worker = WorkerProcess(
        settings, ctx.workdir / f"learner-{model}.log", cwd=ROOT, name=f"learner ({model})"
    )
    launch(worker)
    await worker.wait_ready_async(90.0)
    await wait_learner(worker)
    signer = Signer(ctx.key.encode(), SNAPSHOT_PURPOSE)
    issuer = RequestIssuer(ctx.key.encode())
    tail = ModelsTail(ctx.bootstrap, settings.topics.models, signer)
    await tail.start()
    producer = bulk_producer(ctx.bootstrap)
    await producer.start()
    n = args.feedback
    kinds = [k.strip() for k in args.feedback_kinds.split(",") if k.strip()]
    out: dict[str, Any] = {
        "feedback_per_run": n,
        "settings": {
            "snapshot_interval_s": settings.snapshot.interval_s,
            "snapshot_every_examples": settings.snapshot.every_examples,
            "learner_batch_max_records": settings.learner.batch_max_records,
            "model_tabular": settings.model.tabular,
            "candidates": [c.tabular for c in settings.model.candidates()]
            if hasattr(settings.model, "candidates")
            else [settings.model.tabular],
        },
        "runs": [],
    }
    offset, learned_before = 0, 0
    try:
        for i, kind in enumerate(kinds):
            data = generate(n, args.seed + 10 + i, "ab"[i % 2], keep_features=True)
            messages = feedback_messages(data, kind, issuer)
            mean_bytes = sum(len(v) for v in messages.values[:1000]) / min(n, 1000)
            before = await sync_state(worker)
            seen_before = len(tail.seen)
            freeze(worker)
            try:
                t0 = time.perf_counter()
                await bulk_produce(producer, settings.topics.feedback, messages, 0, n, 1)
                produce_s = time.perf_counter() - t0
            finally:
                resume(worker)
            cpu0, bcpu0 = cpu_seconds(worker.pid), cpu_seconds(ctx.broker_pid)
            resumed = time.time()
            target = offset + n
            done = await tail.wait_covering(target, max(120.0, n / 200), lambda: check(worker))
            cpu = cpu_seconds(worker.pid) - cpu0
            broker_cpu = cpu_seconds(ctx.broker_pid) - bcpu0
            drain_s = done.arrival - resumed
            await asyncio.sleep(0.3)
            after = await sync_state(worker)
            during = [
                s
                for s in tail.seen[seen_before:]
                if s.header.feedback_offset > offset and s.arrival <= done.arrival
            ]
            published = after["snapshots_published"] - before["snapshots_published"]
            publish_s = (
                after["snapshot_publish_seconds_sum"] - before["snapshot_publish_seconds_sum"]
            )
            learned = done.header.learned_total - learned_before
            run = {
                "model": model,
                "kind": kind,
                "feedback": n,
                "feedback_bytes_mean": mean_bytes,
                "backlog_produce_seconds": produce_s,
                "drain_seconds": drain_s,
                "feedback_per_s": n / drain_s,
                "learned": learned,
                "duplicates": done.header.duplicates,
                "rejected": dict(done.header.rejected),
                "cpu_seconds": cpu,
                "cpu_us_per_feedback": cpu / n * 1e6,
                "cpu_cores_used": cpu / drain_s,
                "broker_cpu_us_per_feedback": broker_cpu / n * 1e6,
                "snapshots_seen_during_drain": len(during),
                "snapshots_published": published,
                "snapshot_publish_seconds_total": publish_s,
                "snapshot_publish_ms_mean": publish_s / published * 1000 if published else None,
                "snapshot_share_of_drain": publish_s / drain_s,
                "snapshot_bytes_last": done.size,
                "snapshot_bytes_max": max((s.size for s in during), default=done.size),
                "snapshot_header": {
                    "model_version": done.header.model_version,
                    "feedback_offset": done.header.feedback_offset,
                    "learned_by_source": done.header.learned_by_source,
                },
                "worker_rss_mb": proc_status(worker.pid).get("VmRSS", 0) / 1024,
                "loadavg": os.getloadavg(),
            }
            out["runs"].append(run)
            if learned != n:
                console.print(f"[red]  learned {learned} of {n} (rejected/duplicates?)[/]")
            console.print(
                f"  {model}, {kind}: {run['feedback_per_s']:,.0f} feedback/s over {n:,}"
                f" ({drain_s:.1f}s, {run['cpu_us_per_feedback']:.0f} µs CPU/feedback),"
                f" {len(during)} snapshots (one in flight"
                f" {run['snapshot_share_of_drain']:.0%} of the time),"
                f" last {done.size / 1024:.0f} KiB; load {os.getloadavg()[0]:.2f}"
            )
            offset, learned_before = target, done.header.learned_total
    finally:
        await producer.stop()
        await tail.stop()
        worker.stop()
    return out


# --------------------------------------------------------------------------- part: snapshots


def timed(fn: Callable[[], Any], reps: int) -> tuple[float, Any]:
    """Median seconds of ``reps`` calls, and the last result."""
    times, result = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


async def measure_snapshot(
    controller: TrustController,
    signer: Signer,
    producer: AIOKafkaProducer,
    settings: Settings,
    reps: int,
) -> dict[str, Any]:
    """Median encode, decode and publish (send + ack) times of one controller's snapshot.

    A snapshot over AUTOLABEL_SNAPSHOT__MAX_BYTES is not published (the learner would
    refuse to publish it too: labelers keep the previous model).
    """
    enc_s, raw = timed(lambda: encode_snapshot(controller, signer, writer="bench"), reps)
    dec_s, snap = timed(lambda: decode_snapshot(raw, signer), reps)
    over = len(raw) > settings.snapshot.max_bytes
    pub = []
    for _ in range(0 if over else reps):
        t0 = time.perf_counter()
        await publish(producer, settings.topics.models, b"bench", raw, timeout_s=60.0)
        pub.append(time.perf_counter() - t0)
    return {
        "pickle_bytes": snap.header.pickle_bytes,
        "wire_bytes": len(raw),
        "encode_ms": enc_s * 1000,
        "decode_ms": dec_s * 1000,
        "publish_ms": statistics.median(pub) * 1000 if pub else None,
        "over_max_bytes": over,
    }


async def snapshots_part(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    console.rule("[bold]snapshots: size and time per model kind (in-process)")
    base = f"{ctx.run_id}.snapshots"
    settings = deployment(ctx.bootstrap, base, ctx.key)
    await ensure_topics(settings)  # the models topic as the service creates it
    producer = make_producer(
        settings.kafka, linger_ms=0, max_request_size=settings.snapshot.max_bytes + 1024 * 1024
    )
    await producer.start()
    signer = Signer(ctx.key.encode(), SNAPSHOT_PURPOSE)
    sizes = sorted({int(x) for x in args.snapshot_examples.split(",")})
    grow = sorted({int(x) for x in args.grow_examples.split(",") if x.strip()} - set(sizes))
    rows: list[dict[str, Any]] = []
    try:
        for kind, model in MODEL_KINDS:
            if args.model_kinds and f"{kind}/{model}" not in args.model_kinds.split(","):
                continue
            model_settings = ModelSettings(**{**SINGLE, kind: model})
            cfg = controller_config(Settings(model=model_settings, snapshot={"key": ctx.key}))
            label = model
            if model == "auto" and hasattr(model_settings, "candidates"):
                label = "auto: " + "+".join(getattr(c, kind) for c in model_settings.candidates())
            controller = TrustController(cfg)
            checkpoints = sizes + (grow if model in GROWING and kind == "tabular" else [])
            stream = [
                Admitted(
                    Feedback(id=r.id, record=r, label=y, source=FeedbackSource.REVIEW),
                    FeedbackSource.REVIEW,
                    1.0,
                    None,
                    None,
                )
                for r, y in example_stream(
                    kind, max(checkpoints), args.seed + 20, args.embedding_dim
                )
            ]
            learned, learn_s = 0, 0.0
            for at in checkpoints:
                t0 = time.perf_counter()
                for offset in range(learned, at):
                    controller.absorb(stream[offset], offset)
                learn_s += time.perf_counter() - t0
                learned = at
                row = {
                    "kind": kind,
                    "model": label,
                    "examples": at,
                    "learn_ms_per_example": learn_s / at * 1000,
                    **await measure_snapshot(controller, signer, producer, settings, args.reps),
                }
                rows.append(row)
                console.print(
                    f"  {kind}/{label} @ {at:,}: {row['wire_bytes'] / 1024:,.0f} KiB on the wire"
                    f" ({row['pickle_bytes'] / 1024:,.0f} KiB pickled), encode"
                    f" {row['encode_ms']:.1f} ms, decode {row['decode_ms']:.1f} ms, publish"
                    f" {row['publish_ms'] or math.nan:.1f} ms; learning"
                    f" {row['learn_ms_per_example']:.2f} ms/example"
                )
            if kind == "tabular" and model == "softmax":
                rows.append(await dedupe_row(controller, signer, producer, settings, args.reps))
            del controller, stream
    finally:
        await producer.stop()
    return {
        "rows": rows,
        "max_bytes_setting": settings.snapshot.max_bytes,
        "models_topic_max_message_bytes": settings.snapshot.max_bytes + 1024 * 1024,
        "reps": args.reps,
        "embedding_dim": args.embedding_dim,
        "recommendation": recommend(rows, settings.snapshot.max_bytes),
    }


async def dedupe_row(
    controller: TrustController,
    signer: Signer,
    producer: AIOKafkaProducer,
    settings: Settings,
    reps: int,
) -> dict[str, Any]:
    """The same softmax controller with its dedupe window full of answered request ids."""
    window = settings.learner.dedupe_window
    clone: TrustController = pickle.loads(pickle.dumps(controller))
    remember = getattr(clone, "_remember", None)
    if remember is not None:
        for _ in range(window):
            remember(secrets.token_bytes(16))  # a request's MAC: 16 random-looking bytes
    row = {
        "kind": "tabular",
        "model": f"softmax + {window:,} answered requests",
        "examples": controller.learned_by_source.total(),
        "learn_ms_per_example": None,
        **await measure_snapshot(clone, signer, producer, settings, reps),
    }
    console.print(
        f"  + a full dedupe window ({window:,} answered review requests):"
        f" {row['wire_bytes'] / 1024:,.0f} KiB on the wire, encode {row['encode_ms']:.1f} ms,"
        f" decode {row['decode_ms']:.1f} ms"
    )
    return row


def recommend(rows: list[dict[str, Any]], max_bytes: int) -> dict[str, Any]:
    """Largest snapshot measured, margin under max_bytes, growth of the tree/forest models."""
    largest = max(rows, key=lambda r: r["wire_bytes"])
    growth: dict[str, Any] = {}
    for model in GROWING:
        pts = sorted(
            (r["examples"], r["wire_bytes"])
            for r in rows
            if r["model"] == model and r["kind"] == "tabular"
        )
        if len(pts) < 2:
            continue
        (x0, y0), (x1, y1) = pts[-2], pts[-1]
        slope = (y1 - y0) / (x1 - x0)  # between the two largest sizes measured
        growth[model] = {
            "bytes_by_examples": {str(x): y for x, y in pts},
            "bytes_per_example": slope,
            "slope_between_examples": [x0, x1],
            "examples_at_max_bytes": (x1 + (max_bytes - y1) / slope) if slope > 0 else None,
        }
    return {
        "largest": {k: largest[k] for k in ("kind", "model", "examples", "wire_bytes")},
        "margin_under_max_bytes": max_bytes / largest["wire_bytes"],
        "growth": growth,
    }


# --------------------------------------------------------------------------- part: sync


class Poller:
    """Polls one worker's /readyz over a kept-alive connection, in the calling thread."""

    def __init__(self, worker: WorkerProcess, interval_s: float) -> None:
        self.worker = worker
        self.interval_s = interval_s
        self.port = worker.settings.http.port
        self.conn: http.client.HTTPConnection | None = None
        self.polls = 0

    def offset(self) -> int | None:
        for _ in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                self.conn.request("GET", "/readyz")
                body = self.conn.getresponse().read()
                self.polls += 1
                value = orjson.loads(body).get("feedback_offset")
                return int(value) if value is not None else None
            except (OSError, http.client.HTTPException, orjson.JSONDecodeError):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
        return None

    def wait_covering(self, target: int, timeout_s: float) -> float | None:
        """time.time() of the first answer whose feedback_offset >= target (None: timeout)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            offset = self.offset()
            now = time.time()
            if offset is not None and offset >= target:
                return now
            time.sleep(self.interval_s)
        return None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


async def paced_stream(
    producer: AIOKafkaProducer, topic: str, data: DataSet, rate: float, stop: asyncio.Event
) -> int:
    """Send records at ``rate`` per second until ``stop``; returns how many were sent."""
    start, i, partitions = time.monotonic(), 0, 3
    while not stop.is_set() and i < len(data):
        due = min(len(data), int((time.monotonic() - start) * rate) + 1)
        while i < due:
            await producer.send(topic, data.values[i], key=data.keys[i], partition=i % partitions)
            i += 1
        await asyncio.sleep(0.005)
    return i


async def sync_part(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    console.rule(f"[bold]model sync latency: {args.workers} workers")
    settings = deployment(ctx.bootstrap, f"{ctx.run_id}.sync", ctx.key)
    workers = [
        WorkerProcess(
            on_port(settings, free_port()) if i else settings,
            ctx.workdir / f"sync-{i + 1}.log",
            cwd=ROOT,
            name=f"worker-{i + 1}",
        )
        for i in range(args.workers)
    ]
    for w in workers:
        launch(w)
    await asyncio.gather(*(w.wait_ready_async(120.0) for w in workers))
    producer = AIOKafkaProducer(bootstrap_servers=ctx.bootstrap, acks="all", linger_ms=0)
    await producer.start()
    signer = Signer(ctx.key.encode(), SNAPSHOT_PURPOSE)
    tail = ModelsTail(ctx.bootstrap, settings.topics.models, signer)
    pollers = [Poller(w, args.poll_ms / 1000) for w in workers]
    stream_stop = asyncio.Event()
    stream_task: asyncio.Task[int] | None = None
    stream_sent, stream_ran_out = 0, False
    probes: list[dict[str, Any]] = []
    try:
        # warm up, so the probes change a trained model, as in production
        warm = generate(WARMUP_EXAMPLES, args.seed + 30, "w", keep_features=True)
        futures = [
            await producer.send(settings.topics.feedback, v, key=k) for k, v in seed_messages(warm)
        ]
        await asyncio.gather(*futures)
        await tail.start()
        await tail.wait_covering(WARMUP_EXAMPLES, 60.0)
        for p in pollers:
            if await asyncio.to_thread(p.wait_covering, WARMUP_EXAMPLES, 60.0) is None:
                raise BenchError(f"{p.worker.name} did not load the warm-up snapshot in 60s")
        states = [await sync_state(w) for w in workers]
        learner_worker = next(
            (w for w, s in zip(workers, states, strict=True) if s["learner_active"]), None
        )
        learner = learner_worker.name if learner_worker else None
        marks = [await sync_state(learner_worker)] if learner_worker else []
        # enough records for the second half even when probes take longer than their spacing
        streamed_s = args.probes / 2 * max(args.probe_every_s, 1.0) * 1.5 + 2
        stream_data = generate(int(args.stream_rate * streamed_s), args.seed + 31, "s")
        probe_data = generate(args.probes, args.seed + 32, "p", keep_features=True)
        probe_msgs = feedback_messages(probe_data, "review", RequestIssuer(ctx.key.encode()))
        for i in range(args.probes):
            streaming = i >= args.probes // 2
            if streaming and stream_task is None:
                if learner_worker:
                    marks.append(await sync_state(learner_worker))
                stream_task = asyncio.create_task(
                    paced_stream(
                        producer,
                        settings.topics.records,
                        stream_data,
                        args.stream_rate,
                        stream_stop,
                    )
                )
                await asyncio.sleep(1.0)  # the labelers are busy before the first probe
            started = time.monotonic()
            for w in workers:
                check(w)
            future = await producer.send(
                settings.topics.feedback, probe_msgs.values[i], key=probe_msgs.keys[i], partition=0
            )
            meta = await future
            acked = time.time()
            target = meta.offset + 1
            covered = await asyncio.gather(
                *(asyncio.to_thread(p.wait_covering, target, 30.0) for p in pollers)
            )
            snap = tail.covering(target)
            if any(c is None for c in covered):
                raise BenchError(f"probe {i}: not every worker covered offset {target} in 30s")
            per_worker = [(c - acked) * 1000 for c in covered if c is not None]
            probes.append(
                {
                    "offset": meta.offset,
                    "streaming": streaming,
                    "all_workers_ms": max(per_worker),
                    "per_worker_ms": per_worker,
                    "to_models_topic_ms": (snap.arrival - acked) * 1000 if snap else None,
                    "snapshot_bytes": snap.size if snap else None,
                }
            )
            await asyncio.sleep(max(0.0, started + args.probe_every_s - time.monotonic()))
        if learner_worker:
            marks.append(await sync_state(learner_worker))
        if stream_task is not None:
            stream_ran_out = stream_task.done()  # it ended before the last probe: say so
            stream_stop.set()
            stream_sent = await stream_task
    finally:
        stream_stop.set()
        if stream_task is not None and not stream_task.done():
            stream_task.cancel()
        for p in pollers:
            p.close()
        await tail.stop()
        await producer.stop()
        rss = [proc_status(w.pid).get("VmRSS", 0) / 1024 for w in workers if w.alive()]
        for w in workers:
            w.stop()

    def stats(sel: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "all_workers_ms": percentiles([p["all_workers_ms"] for p in sel]),
            "to_models_topic_ms": percentiles(
                [p["to_models_topic_ms"] for p in sel if p["to_models_topic_ms"] is not None]
            ),
            "models_topic_to_all_workers_ms": percentiles(
                [
                    p["all_workers_ms"] - p["to_models_topic_ms"]
                    for p in sel
                    if p["to_models_topic_ms"] is not None
                ]
            ),
        }

    def publishing(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        n = b["snapshots_published"] - a["snapshots_published"]
        sec = b["snapshot_publish_seconds_sum"] - a["snapshot_publish_seconds_sum"]
        return {"published": n, "mean_publish_ms": sec / n * 1000 if n else None}

    learner_publishing = (
        {"idle": publishing(marks[0], marks[1]), "streaming": publishing(marks[1], marks[2])}
        if len(marks) == 3
        else {}
    )
    idle = [p for p in probes if not p["streaming"]]
    busy = [p for p in probes if p["streaming"]]
    out = {
        "workers": args.workers,
        "active_learner": learner,
        "learner_publishing": learner_publishing,  # the snapshot interval is >= 10x this
        "probes": len(probes),
        "probe_every_s": args.probe_every_s,
        "poll_ms": args.poll_ms,
        "stream_rate": args.stream_rate,
        "stream_records_sent": stream_sent,
        "stream_ran_out_before_last_probe": stream_ran_out,
        "all": stats(probes),
        "idle": stats(idle),
        "streaming": stats(busy),
        "polls": sum(p.polls for p in pollers),
        "worker_rss_mb_end": rss,
        "loadavg_end": os.getloadavg(),
        "probe_series": probes,
    }
    a = out["all"]["all_workers_ms"]
    console.print(
        f"  {len(probes)} probes: every worker covered the feedback p50 {a['p50']:.0f} ms,"
        f" p99 {a['p99']:.0f} ms, max {a['max']:.0f} ms after its ack"
        f" (learner: {learner}); load {os.getloadavg()[0]:.2f}"
    )
    return out


# --------------------------------------------------------------------------- report


def print_report(report: dict[str, Any]) -> None:
    out = Console(width=max(Console().width, 130))
    m = report["machine"]
    if "learner" in report:
        lr = report["learner"]
        t = Table(
            title="learner: feedback/s with snapshots on (backlog drain, default snapshot settings)"
        )
        for col in (
            "model",
            "answers",
            "N",
            "fb/s",
            "CPU µs/fb",
            "snapshots",
            "publish",
            "in flight",
            "last snap",
            "learned",
            "load",
        ):
            t.add_column(col, justify="left" if col in ("model", "answers") else "right")
        for r in lr["runs"]:
            t.add_row(
                r["model"],
                r["kind"],
                f"{r['feedback']:,}",
                f"{r['feedback_per_s']:,.0f}",
                f"{r['cpu_us_per_feedback']:.0f}",
                f"{r['snapshots_seen_during_drain']}",
                f"{r['snapshot_publish_ms_mean']:.1f} ms" if r["snapshot_publish_ms_mean"] else "-",
                f"{r['snapshot_share_of_drain']:.0%}",
                f"{r['snapshot_bytes_last'] / 1024:,.0f} KiB",
                f"{r['learned']:,}",
                f"{r['loadavg'][0]:.2f}",
            )
        out.print(t)
    if "snapshots" in report:
        sp = report["snapshots"]
        t = Table(title="snapshot size and time per model kind (in-process; publish = send + ack)")
        for col in (
            "kind",
            "model",
            "examples",
            "learn ms/ex",
            "pickle",
            "on the wire",
            "encode ms",
            "decode ms",
            "publish ms",
        ):
            t.add_column(col, justify="left" if col in ("kind", "model") else "right")
        for r in sp["rows"]:
            t.add_row(
                r["kind"],
                r["model"],
                f"{r['examples']:,}",
                f"{r['learn_ms_per_example']:.2f}" if r["learn_ms_per_example"] else "-",
                f"{r['pickle_bytes'] / 1024:,.0f} KiB",
                f"{r['wire_bytes'] / 1024:,.0f} KiB",
                f"{r['encode_ms']:.1f}",
                f"{r['decode_ms']:.1f}",
                f"{r['publish_ms']:.1f}" if r["publish_ms"] is not None else "over max",
            )
        out.print(t)
        rec = sp["recommendation"]
        mib = sp["max_bytes_setting"] / 2**20
        lines = [
            f"largest snapshot: {rec['largest']['kind']}/{rec['largest']['model']} at"
            f" {rec['largest']['examples']:,} examples, {rec['largest']['wire_bytes'] / 2**20:.1f}"
            f" MiB: {rec['margin_under_max_bytes']:.1f}x under AUTOLABEL_SNAPSHOT__MAX_BYTES"
            f" ({mib:.0f} MiB; the models topic's max.message.bytes ="
            f" {sp['models_topic_max_message_bytes'] / 2**20:.0f} MiB)"
        ]
        for model, g in rec["growth"].items():
            at = g["examples_at_max_bytes"]
            x0, x1 = g["slope_between_examples"]
            lines.append(
                f"{model}: grows {g['bytes_per_example']:,.0f} bytes per example learned"
                f" ({x0:,} → {x1:,} examples)"
                + (f"; at that rate it reaches {mib:.0f} MiB at ≈ {at:,.0f} examples" if at else "")
            )
        out.print("\n".join(lines))
    if "sync" in report:
        sy = report["sync"]
        t = Table(
            title=f"model sync latency: feedback ack → every one of {sy['workers']} workers'"
            f" /readyz covers it ({sy['probes']} probes, every {sy['probe_every_s']} s,"
            f" polled every {sy['poll_ms']} ms)"
        )
        for col in ("probes", "n", "p50 ms", "p90 ms", "p99 ms", "max ms", "→ topic p50/p99"):
            t.add_column(col, justify="left" if col == "probes" else "right")
        for name, label in (
            ("idle", "idle"),
            ("streaming", f"records at {sy['stream_rate']:,.0f}/s"),
            ("all", "all"),
        ):
            a, b = sy[name]["all_workers_ms"], sy[name]["to_models_topic_ms"]
            if not a:
                continue
            t.add_row(
                label,
                str(a["n"]),
                f"{a['p50']:.0f}",
                f"{a['p90']:.0f}",
                f"{a['p99']:.0f}",
                f"{a['max']:.0f}",
                f"{b['p50']:.0f} / {b['p99']:.0f}" if b else "-",
            )
        out.print(t)
        lp = sy.get("learner_publishing") or {}
        if lp:
            out.print(
                "learner's snapshots during the probes: "
                + ", ".join(
                    f"{half} {v['published']:.0f} published, mean"
                    f" {v['mean_publish_ms'] or math.nan:.0f} ms each"
                    for half, v in lp.items()
                )
                + " (it publishes at most every max(0.5 s, 10 x the CPU time of the last"
                " snapshot), one at a time)"
            )
    summary = report["summary"]
    for model, v in summary.get("learner", {}).items():
        rate = v["feedback_per_s"]
        ok = "[green]meets[/]" if v["meets_target"] else "[red]below[/]"
        out.print(
            f"learner ({model}) with snapshots on: {rate:,.0f} feedback/s (target ≥"
            f" {LEARNER_TARGET:,.0f}: {ok}; previous {PREVIOUS['learner_feedback_per_s']:,.0f}"
            f" before snapshots), {v['cpu_us_per_feedback']:.0f} µs CPU per feedback"
        )
    out.print(
        f"[dim]{m['cpu_model']}, {m['nproc']} CPUs, Python {m['python']};"
        f" load average {m['loadavg_start'][0]:.2f} at start, {m['loadavg_end'][0]:.2f} at end[/]"
    )


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"previous": PREVIOUS, "targets": {"learner_feedback_per_s": 5000}}
    if "learner" in report:
        runs = report["learner"]["runs"]
        by_model: dict[str, Any] = {}
        for model in report["learner"]["models"]:
            mine = [r for r in runs if r["model"] == model]
            slowest = min(mine, key=lambda r: r["feedback_per_s"])
            by_model[model] = {
                "feedback_per_s": slowest["feedback_per_s"],
                "cpu_us_per_feedback": slowest["cpu_us_per_feedback"],
                "by_kind": {r["kind"]: r["feedback_per_s"] for r in mine},
                "over_previous": slowest["feedback_per_s"] / PREVIOUS["learner_feedback_per_s"],
                "meets_target": slowest["feedback_per_s"] >= LEARNER_TARGET,
            }
        out["learner"] = by_model  # per tabular model setting: the slower of its runs
    if "snapshots" in report:
        out["snapshot_recommendation"] = report["snapshots"]["recommendation"]
    if "sync" in report:
        a = report["sync"]["all"]["all_workers_ms"]
        out["sync_latency_ms"] = {k: a[k] for k in ("p50", "p99", "max")}
    return out


# --------------------------------------------------------------------------- main


@dataclass
class Context:
    bootstrap: str
    broker_pid: int
    run_id: str
    workdir: Path
    key: str


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", default=",".join(PARTS), help="subset of: " + ", ".join(PARTS))
    p.add_argument("--feedback", type=int, default=15_000, help="learner: feedback per run")
    p.add_argument(
        "--learner-models",
        default="auto,softmax",
        help="learner: one worker per AUTOLABEL_MODEL__TABULAR value (auto = the default:"
        " every candidate learns)",
    )
    p.add_argument(
        "--feedback-kinds",
        default="review,request_id",
        help="learner: runs, in order: review (plain answers), request_id (signed tickets)",
    )
    p.add_argument(
        "--snapshot-examples", default="2000", help="snapshots: examples learned (comma list)"
    )
    p.add_argument(
        "--grow-examples",
        default="10000",
        help="snapshots: further sizes for the tree and forest models (comma list)",
    )
    p.add_argument(
        "--model-kinds", default="", help="snapshots: subset, e.g. tabular/arf,text/bow_nb"
    )
    p.add_argument("--embedding-dim", type=int, default=128)
    p.add_argument("--reps", type=int, default=3, help="snapshots: timings are medians of this")
    p.add_argument("--workers", type=int, default=3, help="sync: workers of one deployment")
    p.add_argument("--probes", type=int, default=100)
    p.add_argument("--probe-every-s", type=float, default=0.7)
    p.add_argument("--poll-ms", type=float, default=10.0)
    p.add_argument(
        "--stream-rate", type=float, default=2000.0, help="sync: records/s in the second half"
    )
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--json", type=Path, default=BENCH / "results" / "learner_sync.json")
    p.add_argument("--keep-logs", action="store_true")
    return p.parse_args(argv)


async def run(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    parts = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise BenchError(f"unknown part(s) {sorted(unknown)}; choose from {PARTS}")
    report: dict[str, Any] = {}
    runners = {"learner": learner_part, "snapshots": snapshots_part, "sync": sync_part}
    for part in PARTS:
        if part in parts:
            load_before = os.getloadavg()
            report[part] = await runners[part](args, ctx)
            report[part]["loadavg_before"] = load_before
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def on_signal(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    machine = machine_info()
    workdir = Path(tempfile.mkdtemp(prefix="autolabel-bench-sync-"))
    broker = LocalBroker(log_path=workdir / "broker.log")
    started = time.monotonic()
    try:
        broker.start()
        process = getattr(broker, "_process", None)  # for its CPU time only
        ctx = Context(
            broker.bootstrap_servers,
            process.pid if process else 0,
            f"bench-{os.getpid()}",
            workdir,
            secrets.token_hex(32),
        )
        console.print(f"broker {broker.bootstrap_servers}, logs in {workdir}")
        parts = asyncio.run(run(args, ctx))
    except (BenchError, WorkerProcessError) as exc:
        console.print(f"[red]bench failed:[/] {exc}\n(logs kept in {workdir})")
        return 1
    except KeyboardInterrupt:
        console.print("[red]interrupted[/]")
        return 130
    finally:
        for child in LIVE:
            child.stop(timeout_s=5.0)
        broker.stop()
    machine["loadavg_end"] = os.getloadavg()
    report = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "seconds": time.monotonic() - started,
        **parts,
    }
    report["summary"] = summarise(report)
    print_report(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    console.print(f"wrote {args.json} ({report['seconds']:.0f} s)")
    if not args.keep_logs:
        for f in workdir.iterdir():
            f.unlink()
        workdir.rmdir()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
