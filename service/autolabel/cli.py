"""The ``autolabel`` command line: the only place that reads the environment.

Subcommands: ``worker`` (the service), ``demo``, ``review``, ``label-studio``, ``produce``,
``topics``, ``evaluate``, ``suite``, ``seed``, ``dataset``, ``schemas``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from autolabel.settings import Settings, SettingsError, load_settings
from autolabel.tools.suite_streams import NAMES as SUITE_NAMES

log = logging.getLogger("autolabel")

GC_THRESHOLD = 200_000


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"autolabel: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    command: Callable[[argparse.Namespace, Settings], int] = args.command
    try:
        return command(args, settings)
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autolabel",
        description="Streaming auto-labeling with certified precision. Configure with"
        " AUTOLABEL_* environment variables (see README).",
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = sub.add_parser("worker", help="run the service (labeler, learner, HTTP ops port)")
    p.set_defaults(command=_worker)

    p = sub.add_parser("topics", help="create missing topics and check partition counts")
    p.add_argument("--check", action="store_true", help="only check, create nothing")
    p.set_defaults(command=_topics)

    p = sub.add_parser("produce", help="replay a CSV or JSONL file into the records topic")
    p.add_argument("file", type=Path)
    p.add_argument("--label-column", required=True, help="never sent; the truth stays out")
    p.add_argument("--id-column", default="id", help="becomes the record id when present")
    p.add_argument("--text-column", help="send this column as the record's text")
    p.add_argument("--embedding-column", help="send this column (a list) as the embedding")
    p.add_argument("--limit", type=int, help="stop after N rows")
    p.add_argument("--rate", type=float, help="records per second (default: as fast as acked)")
    p.set_defaults(command=_produce)

    p = sub.add_parser("demo", help="local broker + worker + replay + simulated reviewer")
    p.add_argument("--records", type=int, help="replay only the first N records")
    p.add_argument("--rate", type=float, default=400.0, help="records per second")
    p.add_argument("--review-delay", type=float, default=0.3, help="reviewer seconds/answer")
    p.add_argument(
        "--seed",
        type=int,
        help="labeled rows checked and learned before the stream (default 800; 0: none)",
    )
    p.set_defaults(command=_demo)

    p = sub.add_parser("review", help="answer review requests at this terminal")
    p.add_argument(
        "--reviewer",
        default=_user(),
        help="your name in every answer (default: the login name)",
    )
    p.add_argument("--group", help="consumer group shared by reviewers (<app_id>-reviewers)")
    p.add_argument("--buffer", type=int, default=200, help="requests held, best first (200)")
    p.add_argument(
        "--undo-seconds",
        type=float,
        default=5.0,
        help="an answer is held this long, or until the next answer, before it is sent (5)",
    )
    p.set_defaults(command=_review)

    p = sub.add_parser("evaluate", help="replay a labeled file offline through the same core")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="CSV or JSONL file")
    source.add_argument("--stream", choices=SUITE_NAMES, help="a stream of the drift suite")
    p.add_argument("--variant", type=int, default=0, help="with --stream: 0 the suite, others")
    p.add_argument("--scale", type=float, default=1.0, help="with --stream: shorten it (0-1]")
    _example_columns(p, required=False)
    p.add_argument("--target-precision", type=float)
    p.add_argument("--delta", type=float)
    p.add_argument("--audit-rate", type=float)
    p.add_argument(
        "--model", help="tabular model: softmax, hoeffding_adaptive_tree, arf, naive_bayes"
    )
    p.add_argument("--review-delay", type=int, default=0, help="answers arrive K records later")
    p.add_argument("--reviewer-error-rate", type=float, default=0.0)
    p.add_argument("--seed", type=Path, dest="seed_file", help="labeled seed set learned first")
    p.add_argument(
        "--drift-at",
        type=_positions,
        help="known change point(s) N[,M...]: measured, and kept in place by --orders",
    )
    p.add_argument(
        "--orders",
        type=int,
        default=0,
        help="also replay N shuffled orders (within the segments between change points)",
    )
    p.add_argument("--jobs", type=int, default=1, help="processes for --orders")
    p.add_argument("--json", type=Path, dest="json_out")
    p.add_argument("--plot", type=Path)
    p.add_argument("--trace", type=Path, help="per-record decisions as CSV")
    p.set_defaults(command=_evaluate)

    p = sub.add_parser("suite", help="evaluate every stream of the drift suite, one table")
    p.add_argument("--variant", type=int, default=0, help="0: the suite; others: unseen streams")
    p.add_argument("--quick", action="store_true", help="short streams, 2 orders (for tests)")
    p.add_argument("--orders", type=int, help="shuffled orders per stationary stream (20)")
    p.add_argument(
        "--segment-orders", type=int, help="orders shuffled within segments per abrupt stream (8)"
    )
    p.add_argument("--streams", help=f"comma-separated subset of: {', '.join(SUITE_NAMES)}")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (2)")
    p.add_argument("--out", type=Path, default=Path(".artifacts/suite"), help="results folder")
    p.add_argument("--plots", action="store_true", help="a PNG per stream in OUT/plots-vN/")
    p.add_argument("--traces", action="store_true", help="a trace CSV per stream, OUT/traces-vN/")
    p.add_argument("--target-precision", type=float)
    p.add_argument("--delta", type=float)
    p.add_argument("--audit-rate", type=float)
    p.add_argument("--model", help="tabular model (see evaluate)")
    p.set_defaults(command=_suite)

    p = sub.add_parser("seed", help="check a labeled seed set, then publish it as feedback")
    p.add_argument("file", type=Path)
    _example_columns(p)
    p.add_argument("--drop-suspicious", action="store_true", help="publish only clean rows")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--show", type=int, default=20, help="suspicious rows to print")
    p.add_argument("--dry-run", action="store_true", help="check only, publish nothing")
    p.set_defaults(command=_seed)

    p = sub.add_parser("dataset", help="write a suite stream as CSV (for evaluate/produce)")
    p.add_argument("name", choices=SUITE_NAMES)
    p.add_argument("out", type=Path)
    p.add_argument("--variant", type=int, default=0, help="0: the suite; others: unseen streams")
    p.set_defaults(command=_dataset)

    p = sub.add_parser(
        "label-studio",
        help="bridge review requests to a Label Studio project and its annotations back",
    )
    p.set_defaults(command=_label_studio)

    p = sub.add_parser("schemas", help="write JSON Schemas and examples into schemas/")
    p.add_argument("--out", type=Path, default=Path("schemas"))
    p.add_argument("--check", action="store_true", help="fail if the files are out of date")
    p.set_defaults(command=_schemas)
    return parser


def _positions(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N[,M...], got {text!r}") from None


def _example_columns(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument("--label-column", required=required)
    p.add_argument("--id-column", default="id")
    p.add_argument("--text-column")
    p.add_argument("--embedding-column")


def _kafka_failed(command: str, settings: Settings, exc: BaseException) -> int:
    """Say in one line why the cluster could not be used (no traceback); exit code 2."""
    from autolabel.kafka.clients import explain_failure

    message = asyncio.run(explain_failure(settings.kafka, exc))
    print(f"autolabel {command}: {message}", file=sys.stderr)
    return 2


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    import faust
    from aiokafka.errors import KafkaError

    from autolabel.kafka.clients import BrokerNotConfigured, client_options
    from autolabel.kafka.topics import ensure_topics
    from autolabel.settings import MissingKey
    from autolabel.worker.app import create_app

    try:
        client_options(settings.kafka)  # a broker is configured
        app, _ = create_app(settings)
    except (BrokerNotConfigured, MissingKey) as exc:  # say what to set, no traceback
        print(f"autolabel: {exc}", file=sys.stderr)
        return 2
    loop = asyncio.new_event_loop()
    try:
        statuses = loop.run_until_complete(ensure_topics(settings))
    except KafkaError as exc:
        loop.close()
        return _kafka_failed("worker", settings, exc)
    asyncio.set_event_loop(loop)
    for status in statuses:
        if status.problem:
            log.warning("topic %s", status.problem)
    worker = faust.Worker(app, loop=loop, loglevel=settings.log_level.upper())
    # The labeler allocates a few objects per record; the default collector thresholds
    # then walk the long-lived heap (models, Faust) many times a second. Freeze what
    # exists at start and collect young objects less eagerly.
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 20)
    worker.execute_from_commandline()  # runs until SIGTERM/SIGINT, then exits the process
    return 0


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    from aiokafka.errors import KafkaError

    from autolabel.kafka.clients import BrokerNotConfigured
    from autolabel.kafka.topics import ensure_topics

    try:
        statuses = asyncio.run(ensure_topics(settings, create=not args.check))
    except BrokerNotConfigured as exc:
        print(f"autolabel: {exc}", file=sys.stderr)
        return 2
    except KafkaError as exc:
        return _kafka_failed("topics", settings, exc)
    problems = 0
    for status in statuses:
        state = "created" if status.created else ("ok" if not status.problem else "PROBLEM")
        print(f"{status.spec.name:40} partitions={status.partitions}  {state}")
        problems += status.problem is not None
    return 1 if problems else 0


def _produce(args: argparse.Namespace, settings: Settings) -> int:
    from aiokafka.errors import KafkaError

    from autolabel.kafka.clients import BrokerNotConfigured
    from autolabel.tools.replay import produce_file

    try:
        asyncio.run(produce_file(settings, args))  # prints its own summary line
    except (ValueError, BrokerNotConfigured) as exc:  # bad file/row/args, no broker
        print(f"autolabel produce: {exc}", file=sys.stderr)
        return 2
    except KafkaError as exc:
        return _kafka_failed("produce", settings, exc)
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from autolabel.tools.demo import run_demo

    return asyncio.run(run_demo(settings, args))


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in a container
        return "reviewer"


def _review(args: argparse.Namespace, settings: Settings) -> int:
    from aiokafka.errors import KafkaError

    from autolabel.kafka.clients import BrokerNotConfigured, client_options
    from autolabel.review.kafka_queue import ReviewQueue
    from autolabel.tools.terminal_review import run_review

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("autolabel review: needs a terminal (stdin and stdout)", file=sys.stderr)
        return 2
    if args.buffer < 1 or args.undo_seconds < 0:
        print("autolabel review: --buffer must be >= 1, --undo-seconds >= 0", file=sys.stderr)
        return 2
    try:
        client_options(settings.kafka)
    except BrokerNotConfigured as exc:
        print(f"autolabel review: {exc}", file=sys.stderr)
        return 2
    if settings.log_level == "info":  # the screen is for requests: warnings and errors only
        logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    queue = ReviewQueue(
        settings, reviewer=args.reviewer, group_id=args.group, buffer_size=args.buffer
    )
    try:
        return asyncio.run(
            run_review(queue, undo_s=args.undo_seconds, classes=settings.model.class_set)
        )
    except KafkaError as exc:
        return _kafka_failed("review", settings, exc)


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from autolabel.tools.evaluation_cli import run_evaluate

    return run_evaluate(args, settings)


def _suite(args: argparse.Namespace, settings: Settings) -> int:
    from autolabel.tools.suite_cli import run_suite_command

    return run_suite_command(args, settings)


def _seed(args: argparse.Namespace, settings: Settings) -> int:
    from autolabel.tools.seeding import run_seed

    return run_seed(args, settings)


def _dataset(args: argparse.Namespace, settings: Settings) -> int:
    from autolabel.tools.datasets import export

    try:
        stream = export(args.name, args.out, variant=args.variant)
    except ValueError as exc:
        print(f"autolabel dataset: {exc}", file=sys.stderr)
        return 2
    points = ", ".join(map(str, stream.change_points)) or "none"
    print(
        f"wrote {len(stream.rows)} rows to {args.out} ({stream.kind}; change points: {points});"
        f" metadata in {args.out.with_suffix('.meta.json')}"
    )
    return 0


def _label_studio(args: argparse.Namespace, settings: Settings) -> int:
    import signal

    from aiokafka.errors import KafkaError

    from autolabel.kafka.clients import BrokerNotConfigured, client_options
    from autolabel.review.label_studio.bridge import BridgeError, run_bridge
    from autolabel.review.label_studio.client import LabelStudioError

    try:
        client_options(settings.kafka)
        settings.label_studio.token_value()
    except (BrokerNotConfigured, SettingsError) as exc:
        print(f"autolabel label-studio: {exc}", file=sys.stderr)
        return 2

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run_bridge(settings, stop)

    try:
        asyncio.run(main())
    except (LabelStudioError, BridgeError) as exc:
        print(f"autolabel label-studio: {exc}", file=sys.stderr)
        return 1
    except KafkaError as exc:
        return _kafka_failed("label-studio", settings, exc)
    return 0


def _schemas(args: argparse.Namespace, settings: Settings) -> int:
    from autolabel.tools.schema_files import check_schemas, write_schemas

    if args.check:
        stale = check_schemas(args.out)
        for name in stale:
            print(f"out of date: {args.out / name} (run `autolabel schemas`)", file=sys.stderr)
        return 1 if stale else 0
    for path in write_schemas(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
