"""``autolabel suite``: every stream of the drift suite replayed, in parallel, one table.

Each stream of :mod:`autolabel.tools.suite_streams` is replayed as generated (the run
the plots, traces and change measures come from), then in shuffled orders: whole-stream
shuffles for stationary streams, shuffles within the segments between change points for
abrupt and covariate-shift streams, none for gradual drift (no other order keeps its
meaning; other variants are the way to resample those). Each replay is
:func:`~autolabel.tools.evaluation.replay`, the service's labeler and learner cores with
a simulated reviewer, measured by :func:`~autolabel.tools.stream_metrics.measure`.
Replays run in worker processes (``workers``); the results are put together per stream
with the issue's bars (:func:`~autolabel.tools.stream_metrics.bars`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autolabel.settings import Settings
from autolabel.tools.evaluation import Example, ReviewerModel, StreamRun, replay, replay_order
from autolabel.tools.parallel import map_jobs
from autolabel.tools.stream_metrics import bars, distribution, measure
from autolabel.tools.suite_streams import NAMES, SuiteStream, build

QUICK_SCALE = 0.2
QUICK_ORDERS = 2


@dataclass(frozen=True, slots=True)
class SuiteConfig:
    """Which streams, how long, how many orders, where the plots and traces go."""

    variant: int = 0
    scale: float = 1.0
    orders: int = 20  # shuffled orders of each stationary stream
    segment_orders: int = 8  # orders shuffled within segments (abrupt, covariate shift)
    names: tuple[str, ...] = NAMES
    workers: int = 2
    plots: Path | None = None  # a PNG per stream (the generated order) in this folder
    traces: Path | None = None  # a trace CSV per stream in this folder

    def __post_init__(self) -> None:
        unknown = [n for n in self.names if n not in NAMES]
        if unknown:
            raise ValueError(f"unknown stream(s) {', '.join(unknown)}; choose from {NAMES}")
        if self.orders < 0 or self.segment_orders < 0:
            raise ValueError("orders must be ≥ 0")
        if self.workers < 1:
            raise ValueError("workers must be ≥ 1")


@dataclass(frozen=True, slots=True)
class Job:
    """One replay: a stream as generated (``order`` None) or in a shuffled order."""

    stream: str
    order: int | None
    rows: int  # its cost, for the progress estimate


@dataclass(slots=True)
class SuiteResult:
    config: SuiteConfig
    settings: dict[str, Any]
    streams: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "variant": self.config.variant,
            "scale": self.config.scale,
            "orders": self.config.orders,
            "segment_orders": self.config.segment_orders,
            "settings": self.settings,
            "seconds": round(self.seconds, 1),
            "streams": self.streams,
        }


@functools.cache
def _stream(name: str, variant: int, scale: float) -> tuple[SuiteStream, list[Example]]:
    stream = build(name, variant, scale=scale)
    return stream, stream.examples()


def plan(config: SuiteConfig) -> list[Job]:
    """Every replay the suite runs, the costliest first (so workers finish together)."""
    jobs: list[Job] = []
    for name in config.names:
        stream, _ = _stream(name, config.variant, config.scale)
        rows = len(stream.rows)
        jobs.append(Job(name, None, rows))
        segments = stream.shuffle_segments
        if segments is None:
            continue
        n = config.orders if stream.kind == "stationary" else config.segment_orders
        jobs.extend(Job(name, k, rows) for k in range(1, n + 1))
    return sorted(jobs, key=lambda j: (-j.rows, j.order is not None, j.stream))


def run_job(
    job: Job, config: SuiteConfig, settings: Settings, reviewer: ReviewerModel
) -> dict[str, Any]:
    """Replay one job and measure it (runs in a worker process)."""
    started = time.perf_counter()
    stream, examples = _stream(job.stream, config.variant, config.scale)
    target = settings.policy.target_precision
    points = stream.change_points
    if job.order is None:
        run = replay(examples, settings, reviewer)
        metrics = measure(run, target, points)
        label = f"{stream.name} (variant {config.variant})"
        if config.plots is not None:
            from autolabel.tools.evaluation_report import plot_run

            plot_run(
                run,
                config.plots / f"{stream.name}.png",
                target_precision=target,
                change_points=points,
                gradual=stream.kind == "gradual",
                title=f"{label}: {stream.tests}",
            )
        if config.traces is not None:
            from autolabel.tools.evaluation_report import write_trace

            write_trace(run, config.traces / f"{stream.name}.csv")
        if stream.clean_labels is not None:
            metrics["auto_precision_vs_clean_labels"] = _precision_vs(run, stream.clean_labels)
    else:
        segments = stream.shuffle_segments or ()
        metrics = replay_order(
            examples, settings, reviewer, job.order, segments, change_points=points
        )
    del metrics["drift_events_at"][50:]  # keep the JSON small
    if job.order is not None:
        metrics.pop("per_class")
    return {
        "stream": job.stream,
        "order": job.order,
        "metrics": metrics,
        "seconds": time.perf_counter() - started,
    }


def _precision_vs(run: StreamRun, labels: Sequence[str]) -> float | None:
    """Precision of the auto-labels of a run in generated order against other labels."""
    acc = [i for i in range(len(run.truth)) if run.accepted[i]]
    return sum(run.predicted[i] == labels[i] for i in acc) / len(acc) if acc else None


def run_suite(
    config: SuiteConfig,
    settings: Settings,
    reviewer: ReviewerModel | None = None,
    on_done: Callable[[Job, dict[str, Any]], None] | None = None,
) -> SuiteResult:
    """Replay every job of :func:`plan` and put the results together per stream."""
    reviewer = reviewer or ReviewerModel()
    started = time.perf_counter()
    jobs = plan(config)
    outputs = map_jobs(
        functools.partial(run_job, config=config, settings=settings, reviewer=reviewer),
        jobs,
        config.workers,
        on_done,
    )
    policy = settings.policy
    result = SuiteResult(
        config,
        {
            "target_precision": policy.target_precision,
            "delta": policy.delta,
            "audit_rate": policy.audit_rate,
            "model": settings.model.tabular,
        },
    )
    for name in config.names:
        stream, _ = _stream(name, config.variant, config.scale)
        mine = [o for o in outputs if o["stream"] == name]
        main = next(o["metrics"] for o in mine if o["order"] is None)
        ordered = [o["metrics"] for o in sorted(mine, key=_order) if o["order"] is not None]
        orders = distribution(ordered, policy.target_precision) if ordered else None
        if orders is not None:
            orders["shuffled"] = "whole stream" if stream.kind == "stationary" else "segments"
        entry = {
            **stream.describe(),
            "run": main,
            "orders": orders,
            "seconds": round(sum(o["seconds"] for o in mine), 1),
        }
        entry["bars"] = bars(entry, policy.target_precision, policy.delta)
        entry["bars_in_orders"] = _bars_in_orders(entry, ordered, policy.target_precision)
        result.streams.append(entry)
    result.seconds = time.perf_counter() - started
    return result


def _bars_in_orders(
    entry: dict[str, Any], ordered: list[dict[str, Any]], target_precision: float
) -> dict[str, dict[str, int]]:
    """For each bar judged per run: in how many shuffled orders it was judged, and failed."""
    counts: dict[str, dict[str, int]] = {}
    for metrics in ordered:
        for key, ok in bars({**entry, "run": metrics, "orders": None}, target_precision, 0).items():
            if ok is None:
                continue
            count = counts.setdefault(key, {"judged": 0, "failed": 0})
            count["judged"] += 1
            count["failed"] += not ok
    return counts


def _order(output: dict[str, Any]) -> int:
    return -1 if output["order"] is None else int(output["order"])
