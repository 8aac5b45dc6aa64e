"""``autolabel suite``: run the drift suite with a progress bar, print and write the tables."""

from __future__ import annotations

import argparse
import sys
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from autolabel.settings import Settings
from autolabel.tools.suite import QUICK_ORDERS, QUICK_SCALE, Job, SuiteConfig, plan, run_suite
from autolabel.tools.suite_report import markdown, write
from autolabel.tools.suite_streams import NAMES


def run_suite_command(args: argparse.Namespace, settings: Settings) -> int:
    console = Console(stderr=True)
    stem = f"variant-{args.variant}" + (".quick" if args.quick else "")
    try:
        names = tuple(n.strip() for n in args.streams.split(",")) if args.streams else NAMES
        default_orders, default_segment = (QUICK_ORDERS, 1) if args.quick else (20, 8)
        config = SuiteConfig(
            variant=args.variant,
            scale=QUICK_SCALE if args.quick else 1.0,
            orders=default_orders if args.orders is None else args.orders,
            segment_orders=default_segment if args.segment_orders is None else args.segment_orders,
            names=names,
            workers=args.jobs,
            plots=args.out / f"plots-v{args.variant}" if args.plots else None,
            traces=args.out / f"traces-v{args.variant}" if args.traces else None,
        )
    except ValueError as exc:
        print(f"autolabel suite: {exc}", file=sys.stderr)
        return 2
    jobs = plan(config)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[runs]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        done = 0
        task = progress.add_task(
            f"suite v{config.variant}",
            total=sum(j.rows for j in jobs),
            runs=f"0/{len(jobs)} runs",
        )

        started = last = time.monotonic()
        total = sum(j.rows for j in jobs)
        rows_done = 0

        def on_done(job: Job, _: object) -> None:
            nonlocal done, last, rows_done
            done += 1
            rows_done += job.rows
            progress.update(task, advance=job.rows, runs=f"{done}/{len(jobs)} runs")
            now = time.monotonic()
            if not console.is_terminal and (now - last > 15 or done == len(jobs)):
                last = now  # no live bar (a log, a pipe): a line every 15 s
                elapsed = now - started
                eta = elapsed * (total - rows_done) / rows_done
                console.print(
                    f"suite v{config.variant}: {done}/{len(jobs)} runs,"
                    f" {elapsed:.0f} s elapsed, ETA {eta:.0f} s"
                )

        result = run_suite(config, settings, on_done=on_done).as_json()
    print(markdown(result))
    json_path, md_path = write(result, args.out, stem)
    console.print(f"wrote {json_path} and {md_path}")
    return 0
