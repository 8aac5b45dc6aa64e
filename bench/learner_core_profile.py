"""The learner's per-feedback work without a broker: where the microseconds go.

    python bench/learner_core_profile.py [--feedback N] [--model auto] [--profile OUT]

Drives :meth:`autolabel.worker.learner.LearnerService._absorb` (decode, admit, the
controller's absorb, metrics) with the feedback bench/learner_sync.py produces: N plain
``source=review`` answers, then N answers echoing signed request ids, in polls of
``learner.batch_max_records`` messages, with the backlog (and so the thinning of the
candidates that do not label) of a learner that was stopped while all 2N were produced.
After each poll it exports the controller's status like the learner does, and every
``snapshot.every_examples`` examples it encodes a snapshot (timed apart: the worker
encodes it in a thread, but it is CPU the learner spends per feedback all the same).

``--profile OUT`` writes a cProfile of the whole run (``python -m pstats OUT``) and
prints the top functions by own and cumulative time. On a busy machine compare
``absorb_us_per_feedback_median_poll`` (the median poll) of several runs.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import secrets
import statistics
import time
from pathlib import Path
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from prometheus_client import CollectorRegistry

from autolabel.core.requests import RequestIssuer
from autolabel.core.snapshot import encode_snapshot
from autolabel.settings import load_settings
from autolabel.trust.controller import TrustController
from autolabel.worker.learner import LearnerService, controller_config
from autolabel.worker.metrics import Metrics
from autolabel.worker.shutdown import Deadline
from learner_sync import SINGLE, feedback_messages
from throughput import generate


class Backlog:
    """Stands in for the consumer: the feedback topic's high watermark, for thinning."""

    def __init__(self, end: int) -> None:
        self.end = end

    def highwater(self, tp: TopicPartition) -> int:
        return self.end


def records(topic: str, messages: list[tuple[bytes, bytes]], start: int) -> list[ConsumerRecord]:
    return [
        ConsumerRecord(topic, 0, start + i, 0, 0, k, v, None, len(k), len(v), ())
        for i, (k, v) in enumerate(messages)
    ]


async def drive(args: argparse.Namespace) -> dict[str, Any]:
    key = secrets.token_hex(32)
    # a named model is one candidate (see learner_sync.SINGLE)
    models = {"tabular": args.model} if args.model == "auto" else {**SINGLE, "tabular": args.model}
    settings = load_settings(model=models, snapshot={"key": key})
    issuer = RequestIssuer(key.encode())
    kinds = ["review", "request_id"]
    feedback: list[tuple[bytes, bytes]] = []
    for i, kind in enumerate(kinds):
        data = feedback_messages(
            generate(args.feedback, args.seed + 10 + i, "ab"[i % 2], keep_features=True),
            kind,
            issuer,
        )
        feedback += list(zip(data.keys, data.values, strict=True))
    service = LearnerService(
        settings, key.encode(), Metrics(CollectorRegistry()), "prof", Deadline()
    )
    service.consumer = Backlog(len(feedback))  # type: ignore[assignment]
    controller = TrustController(controller_config(settings))
    service.controller = controller
    tp = TopicPartition(settings.topics.feedback, 0)
    batch = settings.learner.batch_max_records
    every = settings.snapshot.every_examples
    polls = [records(tp.topic, feedback[o : o + batch], o) for o in range(0, len(feedback), batch)]
    absorb_s = snapshot_s = 0.0
    snapshots, since = 0, 0
    per_poll = []  # us per feedback of each poll: the median is steadier on a busy machine
    by_kind = dict.fromkeys(kinds, 0.0)  # absorb CPU seconds per kind of answer
    for messages in polls:
        t0 = time.process_time()
        dead, rewind = await service._absorb(controller, {tp: messages})
        service.metrics.learner(controller.status())
        spent = time.process_time() - t0
        absorb_s += spent
        per_poll.append(spent / len(messages) * 1e6)
        by_kind[kinds[min(messages[0].offset // args.feedback, len(kinds) - 1)]] += spent
        assert not dead and not rewind, (dead[:1], rewind)
        since += len(messages)
        if since >= every:
            t0 = time.process_time()
            encode_snapshot(controller, service.signer, writer="prof")
            snapshot_s += time.process_time() - t0
            snapshots, since = snapshots + 1, 0
    n = len(feedback)
    return {
        "feedback": n,
        "learned": controller.status().learned,
        "candidates": [c.name for c in controller.candidates],
        "chosen": controller.candidates[controller.chosen].name,
        "certificate": controller.certificate,
        "absorb_us_per_feedback": absorb_s / n * 1e6,
        "absorb_us_per_feedback_median_poll": statistics.median(per_poll),
        **{f"absorb_us_per_feedback_{k}": v / args.feedback * 1e6 for k, v in by_kind.items()},
        "snapshot_us_per_feedback": snapshot_s / n * 1e6,
        "snapshots": snapshots,
        "feedback_per_s_cpu_bound": n / (absorb_s + snapshot_s),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--feedback", type=int, default=10_000, help="answers per kind (2 kinds)")
    p.add_argument("--model", default="auto", help="AUTOLABEL_MODEL__TABULAR")
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--profile", type=Path, default=None, help="write a cProfile here")
    p.add_argument("--top", type=int, default=35)
    args = p.parse_args(argv)
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    result = asyncio.run(drive(args))
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)
        stats = pstats.Stats(str(args.profile))
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)
    for k, v in result.items():
        print(f"{k:28} {v:,.1f}" if isinstance(v, float) else f"{k:28} {v}")


if __name__ == "__main__":
    main()
