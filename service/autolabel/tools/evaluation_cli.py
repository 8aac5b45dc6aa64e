"""``autolabel evaluate``: load a file (or build a suite stream), run
:func:`~autolabel.tools.evaluation.evaluate`, and with ``--orders N`` replay N shuffled
orders too.

Orders: a file is taken as stationary between the change points given with
``--drift-at`` (none: the whole file), so its rows are shuffled within those segments
and every change stays where it was. A suite stream knows its kind: stationary streams
are shuffled whole, abrupt and covariate-shift streams within segments, and gradual
drift is refused (no shuffled order keeps a gradual drift; other variants do).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from rich.console import Console
from rich.progress import Progress

from autolabel.settings import Settings
from autolabel.tools.evaluation import Example, ReviewerModel, evaluate, replay_order
from autolabel.tools.evaluation_report import (
    plot,
    print_orders,
    print_report,
    print_stream,
    write_json,
    write_trace,
)
from autolabel.tools.parallel import map_jobs
from autolabel.tools.progress import progress_bar
from autolabel.tools.stream_metrics import distribution
from autolabel.tools.suite_streams import build
from autolabel.tools.tabular_files import DataFileError, load_examples


def run_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    console = Console(stderr=True)
    try:
        source = _load(args)
    except (DataFileError, OSError, ValueError) as exc:
        print(f"autolabel evaluate: {exc}", file=sys.stderr)
        return 2
    examples, seed, change_points, segments = source
    if not examples:
        print(f"autolabel evaluate: {args.data} has no rows", file=sys.stderr)
        return 2
    if args.orders and segments is None:
        print(
            f"autolabel evaluate: --orders: {args.stream} drifts gradually, so no shuffled"
            " order keeps its meaning; evaluate other variants instead (--variant N)",
            file=sys.stderr,
        )
        return 2
    reviewer = ReviewerModel(delay=args.review_delay, error_rate=args.reviewer_error_rate)
    with progress_bar(console, transient=True) as progress:
        tasks = {
            name: progress.add_task(f"replaying ({name})", total=len(examples))
            for name in ("certified", "fixed_0.9")
        }

        def on_progress(name: str, i: int) -> None:
            progress.update(tasks[name], completed=i + 1)

        report, run = evaluate(
            examples,
            settings,
            reviewer,
            seed_examples=seed,
            drift_at=change_points[0] if change_points else None,
            change_points=change_points,
            on_progress=on_progress,
        )
        if args.orders:
            report["orders"] = _orders(
                args, examples, seed, settings, reviewer, change_points, segments or (), progress
            )
    report["data"] = str(args.data) if args.data else f"suite:{args.stream}/{args.variant}"
    out = Console()
    print_report(report, out)
    print_stream(report["stream"], out)
    if "orders" in report:
        print_orders(report["orders"], settings.policy.target_precision, out)
    if args.json_out:
        write_json(report, args.json_out)
        console.print(f"wrote {args.json_out}")
    if args.plot:
        plot(run, report, args.plot)
        console.print(f"wrote {args.plot}")
    if args.trace:
        write_trace(run, args.trace)
        console.print(f"wrote {args.trace}")
    return 0


Loaded = tuple[list[Example], list[Example], list[int], tuple[int, ...] | None]


def _load(args: argparse.Namespace) -> Loaded:
    """Examples, seed examples, change points, and the segments orders shuffle within
    (``None``: no order but the given one means anything)."""
    if args.stream:
        stream = build(args.stream, args.variant, scale=args.scale)
        if args.drift_at:
            raise ValueError("--drift-at: a suite stream knows its own change points")
        examples = stream.examples()
        points = list(stream.change_points)
        segments = stream.shuffle_segments
    else:
        if not args.label_column:
            raise ValueError("--label-column is required with --data")
        examples = load_examples(args.data, **_columns(args))
        points = list(args.drift_at or [])
        segments = tuple(points)  # a file: stationary between the given change points
    seed = load_examples(args.seed_file, **_columns(args)) if args.seed_file else []
    if args.orders < 0 or args.jobs < 1:
        raise ValueError("--orders must be ≥ 0 and --jobs ≥ 1")
    return examples, seed, points, segments


def _columns(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "label_column": args.label_column or "label",
        "id_column": args.id_column,
        "text_column": args.text_column,
        "embedding_column": args.embedding_column,
    }


def _orders(
    args: argparse.Namespace,
    examples: list[Example],
    seed: list[Example],
    settings: Settings,
    reviewer: ReviewerModel,
    change_points: list[int],
    segments: Sequence[int],
    progress: Progress,
) -> dict[str, Any]:
    """Replay ``args.orders`` shuffled orders (order k shuffled with seed k)."""
    task = progress.add_task("shuffled orders", total=args.orders)
    replay_one = functools.partial(
        replay_order,
        examples,
        settings,
        reviewer,
        segments=tuple(segments),
        change_points=tuple(change_points),
        seed_examples=seed,
    )
    with _quiet(args.jobs == 1):
        runs = map_jobs(
            replay_one,
            list(range(1, args.orders + 1)),
            args.jobs,
            lambda _, __: progress.advance(task),
        )
    result = distribution(runs, settings.policy.target_precision)
    result["shuffled"] = "within segments" if segments else "whole stream"
    return result


@contextlib.contextmanager
def _quiet(active: bool) -> Iterator[None]:
    """Drift warnings of the orders replayed in this process stay out of the report."""
    logger = logging.getLogger("autolabel")
    level = logger.level
    if active:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
