"""``autolabel seed``: check a human-labeled seed set, then publish it as feedback.

Garbage in the seed set is garbage out of the labeler, so before anything is
published the set is checked for likely label errors
(:func:`~autolabel.tools.seed_check.find_label_issues`: out-of-sample probabilities
from a cross-validated scikit-learn model, confident-learning style). The
suspicious rows are printed with their given and suggested labels; with
``--drop-suspicious`` they are left out. The rest goes to the feedback topic
with source ``seed``, keyed by record id, every send acknowledged.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from aiokafka.errors import KafkaError
from rich.console import Console
from rich.table import Table

from autolabel.core.codec import encode
from autolabel.core.messages import Feedback, FeedbackSource, Record
from autolabel.kafka.clients import BrokerNotConfigured, explain_failure, make_producer
from autolabel.kafka.topics import ensure_topics
from autolabel.settings import Settings
from autolabel.tools.progress import progress_bar
from autolabel.tools.replay import send_messages
from autolabel.tools.seed_check import InputKind, SeedReport, find_label_issues
from autolabel.tools.tabular_files import DataFileError, load_examples

Example = tuple[Record, str]


def seed_inputs(examples: Sequence[Example]) -> tuple[list[Any], list[str], InputKind]:
    """The seed check's inputs: one kind of record per seed set.

    >>> seed_inputs([(Record(id="a", text="hi"), "x"), (Record(id="b", text="yo"), "y")])
    (['hi', 'yo'], ['x', 'y'], 'text')
    """
    kinds = {record.kind for record, _ in examples}
    if len(kinds) != 1:
        raise ValueError(f"a seed set must hold one kind of record, got {sorted(kinds)}")
    kind = kinds.pop()
    inputs: list[Any] = [
        record.features
        if kind == "features"
        else record.text
        if kind == "text"
        else record.embedding
        for record, _ in examples
    ]
    return inputs, [label for _, label in examples], kind


def check(
    examples: Sequence[Example],
    folds: int,
    on_progress: Callable[[int, int], None] | None = None,
) -> SeedReport:
    inputs, labels, kind = seed_inputs(examples)
    return find_label_issues(inputs, labels, kind=kind, folds=folds, on_progress=on_progress)


def show(report: SeedReport, examples: Sequence[Example], limit: int, console: Console) -> None:
    console.print(report.summary(limit=0).splitlines()[0])
    if not report.issues:
        console.print("no likely label errors found")
        return
    table = Table(title=f"{len(report.issues)} likely label errors ({report.issue_rate:.1%})")
    for column in ("row", "record id", "given", "suggested", "p(given)", "p(suggested)"):
        table.add_column(column)
    for issue in report.issues[:limit]:
        record, _ = examples[issue.index]
        table.add_row(
            str(issue.index),
            record.id,
            issue.given,
            issue.suggested,
            f"{issue.given_probability:.2f}",
            f"{issue.suggested_probability:.2f}",
        )
    console.print(table)
    if len(report.issues) > limit:
        console.print(f"... and {len(report.issues) - limit} more (--show N)")


def seed_messages(examples: Iterable[Example], reviewer: str) -> Iterator[tuple[bytes, bytes]]:
    """``(key, value)`` of each example as seed feedback, keyed by record id.

    >>> from autolabel.core.codec import decode
    >>> [(key, decode(Feedback, value, max_bytes=4096).source) for key, value in seed_messages(
    ...     [(Record(id="r1", features={"x": 1.0}), "cat")], "ana")]
    [(b'r1', <FeedbackSource.SEED: 'seed'>)]
    """
    for record, label in examples:
        feedback = Feedback(
            id=record.id, record=record, label=label, source=FeedbackSource.SEED, reviewer=reviewer
        )
        yield record.id.encode(), encode(feedback)


async def publish(
    settings: Settings,
    examples: Sequence[Example],
    reviewer: str,
    on_sent: Callable[[int], None] | None = None,
) -> int:
    """Send every example as seed feedback; returns how many were acknowledged."""
    await ensure_topics(settings)
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        return await send_messages(
            producer, settings.topics.feedback, seed_messages(examples, reviewer), on_sent=on_sent
        )
    finally:
        await producer.stop()


def run_seed(args: argparse.Namespace, settings: Settings) -> int:
    console = Console()
    progress_console = Console(stderr=True)
    try:
        examples = load_examples(
            args.file,
            label_column=args.label_column,
            id_column=args.id_column,
            text_column=args.text_column,
            embedding_column=args.embedding_column,
        )
        with progress_bar(progress_console, transient=True) as progress:
            task = progress.add_task(f"checking {len(examples)} seed labels (folds fitted)")

            def fitted(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            report = check(examples, args.folds, fitted)
    except (DataFileError, ValueError, OSError) as exc:
        print(f"autolabel seed: {exc}", file=sys.stderr)
        return 2
    show(report, examples, args.show, console)
    suspicious = {issue.index for issue in report.issues}
    kept = [ex for i, ex in enumerate(examples) if not (args.drop_suspicious and i in suspicious)]
    if args.dry_run:
        console.print(f"dry run: would publish {len(kept)} of {len(examples)} examples")
        return 0
    if not kept:
        print(f"autolabel seed: {args.file}: no examples to publish", file=sys.stderr)
        return 2
    try:
        with progress_bar(progress_console, transient=True) as progress:
            task = progress.add_task(f"publishing to {settings.topics.feedback}", total=len(kept))
            sent = asyncio.run(
                publish(
                    settings,
                    kept,
                    reviewer=f"seed:{args.file.name}",
                    on_sent=lambda n: progress.update(task, completed=n),
                )
            )
    except BrokerNotConfigured as exc:
        print(f"autolabel seed: {exc}", file=sys.stderr)
        return 2
    except (KafkaError, OSError) as exc:  # unreachable, refused, TLS or SASL: one line
        message = asyncio.run(explain_failure(settings.kafka, exc))
        print(f"autolabel seed: {message}", file=sys.stderr)
        return 2
    dropped = len(examples) - len(kept)
    console.print(
        f"published {sent} seed examples to {settings.topics.feedback}"
        + (f" ({dropped} suspicious rows dropped)" if dropped else "")
    )
    return 0
