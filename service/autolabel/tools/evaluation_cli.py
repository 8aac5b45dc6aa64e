"""``autolabel evaluate``: load the files, run :func:`~autolabel.tools.evaluation.evaluate`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from autolabel.settings import Settings, SettingsError, load_settings
from autolabel.tools.evaluation import ReviewerModel, evaluate
from autolabel.tools.evaluation_report import plot, print_report, write_json
from autolabel.tools.tabular_files import DataFileError, load_examples


def with_overrides(settings: Settings, args: argparse.Namespace) -> Settings:
    """The settings with the command line's policy and model choices applied (validated)."""
    data: dict[str, Any] = settings.model_dump()
    for flag, key in (
        ("target_precision", "target_precision"),
        ("delta", "delta"),
        ("audit_rate", "audit_rate"),
    ):
        if getattr(args, flag) is not None:
            data["policy"][key] = getattr(args, flag)
    if args.model is not None:
        data["model"]["tabular"] = args.model
    return load_settings(**data)


def run_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    console = Console(stderr=True)
    try:
        settings = with_overrides(settings, args)
        columns = {
            "label_column": args.label_column,
            "id_column": args.id_column,
            "text_column": args.text_column,
            "embedding_column": args.embedding_column,
        }
        examples = load_examples(args.data, **columns)
        seed = load_examples(args.seed_file, **columns) if args.seed_file else []
    except (SettingsError, DataFileError, OSError) as exc:
        print(f"autolabel evaluate: {exc}", file=sys.stderr)
        return 2
    if not examples:
        print(f"autolabel evaluate: {args.data} has no rows", file=sys.stderr)
        return 2
    reviewer = ReviewerModel(delay=args.review_delay, error_rate=args.reviewer_error_rate)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
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
            drift_at=args.drift_at,
            on_progress=on_progress,
        )
    report["data"] = str(args.data)
    print_report(report, Console())
    if args.json_out:
        write_json(report, args.json_out)
        console.print(f"wrote {args.json_out}")
    if args.plot:
        plot(run, report, args.plot)
        console.print(f"wrote {args.plot}")
    return 0
