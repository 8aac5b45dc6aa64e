"""The ``autolabel`` command line: the only place that reads the environment.

Subcommands: ``worker`` (the service), ``demo``, ``review``, ``review-server``, ``label-
studio``, ``produce``, ``topics``, ``evaluate``, ``suite``, ``seed``, ``dataset``,
``schemas``. Each has an ``_add_*`` function that declares its options (``_command``
gives it every setting as a flag, generated from the settings model by
:mod:`autolabel.flags`) and a function that runs it with the settings built once here.
Every expected failure ends in one line on stderr and a non-zero exit: 2 for what the
user gave (a flag, a variable, a file, an unreachable cluster), 1 for a run that found a
problem (``topics --check``, ``produce`` over ``--max-bad-rows``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import logging
import math
import os
import platform
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeAlias

from autolabel import logs
from autolabel.extras import LOCAL_BROKER, PLOTS, MissingExtra, require
from autolabel.flags import HelpFormatter, Parser, add_setting_alias, add_setting_flags, given_flags
from autolabel.settings import Settings, SettingsError, load_settings
from autolabel.tools.suite_streams import NAMES as SUITE_NAMES

log = logging.getLogger("autolabel")

GC_THRESHOLD = 200_000


Command = Callable[[argparse.Namespace, Settings], int]
Subcommands: TypeAlias = "argparse._SubParsersAction[Parser]"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(given_flags(args))
    except SettingsError as exc:
        print(f"autolabel {args.command_name}: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    command: Command = args.command
    try:
        return command(args, settings)
    except MissingExtra as exc:  # an optional part the command needs (not in the image)
        print(f"autolabel {args.command_name}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def build_parser() -> Parser:
    """The whole command line: one ``_add_*`` function per command."""
    parser = Parser(
        prog="autolabel",
        description="Streaming auto-labeling with certified precision. Every setting is an"
        " AUTOLABEL_* environment variable and a flag of the commands that use it"
        " (`autolabel worker --help` lists them); a flag wins over its variable.",
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(required=True, metavar="COMMAND", title="commands")
    for add in (
        _add_worker,
        _add_topics,
        _add_produce,
        _add_demo,
        _add_review,
        _add_review_server,
        _add_label_studio,
        _add_evaluate,
        _add_suite,
        _add_seed,
        _add_dataset,
        _add_schemas,
    ):
        add(sub)
    return parser


def version_text() -> str:
    """``autolabel 0.1.0 (Python 3.11.7)``, from the installed package's metadata."""
    try:
        version = importlib.metadata.version("autolabel")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown (not installed)"
    return f"autolabel {version} (Python {platform.python_version()})"


def _command(
    sub: Subcommands, name: str, run: Command, help: str, *, settings: bool = True
) -> Parser:
    """A subcommand's parser; with ``settings``, every setting is one of its flags too."""
    p = sub.add_parser(
        name, help=help, description=help, formatter_class=HelpFormatter, allow_abbrev=False
    )
    p.set_defaults(command=run, command_name=name)
    if settings:
        add_setting_flags(p)
    return p


# ------------------------------------------------------------------ option types


def bounded(
    kind: type[int] | type[float],
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> Callable[[str], float]:
    """An argparse type: a number within bounds, or an error that states them.

    >>> rate = bounded(float, 0, 1, high_open=True)
    >>> rate("0.1")
    0.1
    >>> rate("2")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be in [0, 1), got 2
    >>> bounded(int, 1)("x")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a whole number, got 'x'
    """

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        below = low is not None and (value <= low if low_open else value < low)
        above = high is not None and (value >= high if high_open else value > high)
        if below or above or not math.isfinite(value):
            raise argparse.ArgumentTypeError(
                f"must be {_range(low, high, low_open, high_open)}, got {text}"
            )
        return value

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


def _range(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    def n(v: float) -> str:
        return f"{v:g}"

    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{n(low)}, {n(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{'more than' if low_open else 'at least'} {n(low)}"
    if high is not None:
        return f"{'less than' if high_open else 'at most'} {n(high)}"
    return "a finite number"


COUNT = bounded(int, 0)
POSITIVE_INT = bounded(int, 1)
POSITIVE = bounded(float, 0, low_open=True)


def positions(text: str) -> list[int]:
    """``N[,M...]``: row positions.

    >>> positions("10,20")
    [10, 20]
    """
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N[,M...], got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positions 0 or more, got {text!r}")
    return values


def output_file(text: str) -> Path:
    """An argparse type: a file that can be written (checked before a long run).

    >>> output_file("/")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: '/' is a folder, expected a file name
    """
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, expected a file name")
    _writable_parent(path, text)
    return path


def output_folder(text: str) -> Path:
    """An argparse type: a folder that exists or can be made, and written."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a file, expected a folder")
    _writable_parent(path, text)
    return path


def _writable_parent(path: Path, text: str) -> None:
    """The nearest existing folder above ``path`` must be a writable folder (an
    existing file at ``path`` is overwritten; a file on the way is an error).

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:  # an existing file may be overwritten
    ...     _writable_parent(Path(f.name), f.name)
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     _writable_parent(Path(f.name) / "out.csv", "x/out.csv")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: cannot write 'x/out.csv': ... is a file
    """
    existing = path.absolute()
    if existing.is_file():
        existing = existing.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: {existing} is a file")
    if not os.access(existing, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: {existing} is not writable")


def _example_columns(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument(
        "--label-column",
        required=required,
        metavar="COLUMN",
        help="the true label (never sent in a record)",
    )
    p.add_argument(
        "--id-column", default="id", metavar="COLUMN", help="becomes the record id when present"
    )
    p.add_argument("--text-column", metavar="COLUMN", help="send this column as the record's text")
    p.add_argument(
        "--embedding-column", metavar="COLUMN", help="send this column (a list) as the embedding"
    )


def _policy_aliases(p: argparse.ArgumentParser) -> None:
    """evaluate's and suite's short names for the settings they vary most."""
    add_setting_alias(
        p,
        "--target-precision",
        ("policy", "target_precision"),
        "precision to certify, in (0.5, 1) (= --policy.target-precision)",
    )
    add_setting_alias(
        p, "--delta", ("policy", "delta"), "allowed failure probability (= --policy.delta)"
    )
    add_setting_alias(
        p, "--audit-rate", ("policy", "audit_rate"), "audit share (= --policy.audit-rate)"
    )
    add_setting_alias(
        p,
        "--model",
        ("model", "tabular"),
        "tabular model: auto, softmax, hoeffding_adaptive_tree, arf, naive_bayes"
        " (= --model.tabular)",
    )


def _problem(command: str, message: object) -> int:
    """Say what went wrong in one line on stderr; exit code 2."""
    print(f"autolabel {command}: {message}", file=sys.stderr)
    return 2


def _kafka_failed(command: str, settings: Settings, exc: BaseException) -> int:
    """Say in one line why the cluster could not be used (no traceback); exit code 2."""
    from autolabel.kafka.clients import explain_failure

    return _problem(command, asyncio.run(explain_failure(settings.kafka, exc)))


# ------------------------------------------------------------------------ commands


def _add_worker(sub: Subcommands) -> None:
    _command(sub, "worker", _worker, "run the service (labeler, learner, HTTP ops port)")


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
        return _problem("worker", exc)
    loop = asyncio.new_event_loop()
    try:
        statuses = loop.run_until_complete(ensure_topics(settings))
    except (KafkaError, OSError) as exc:
        loop.close()
        return _kafka_failed("worker", settings, exc)
    asyncio.set_event_loop(loop)
    for status in statuses:
        if status.problem:
            log.warning("topic %s", status.problem)
    logs.install()  # fold repeated warnings (Kafka clients retrying during an outage)
    # Logging is configured above, once: Faust must not replace the handler (nor print
    # its progress spinner and "OK" line on stdout, outside the log format).
    worker = faust.Worker(
        app,
        loop=loop,
        loglevel=settings.log_level.upper(),
        override_logging=False,
        quiet=True,
    )
    worker.spinner = None  # Faust then logs "Ready" instead of drawing
    # The labeler allocates a few objects per record; the default collector thresholds
    # then walk the long-lived heap (models, Faust) many times a second. Freeze what
    # exists at start and collect young objects less eagerly.
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 20)
    worker.execute_from_commandline()  # runs until SIGTERM/SIGINT, then exits the process
    return 0


def _add_review_server(sub: Subcommands) -> None:
    p = _command(
        sub,
        "review-server",
        _review_server,
        "the web review page for people (its own port; AUTOLABEL_REVIEW__TOKEN)",
    )
    add_setting_alias(p, "--host", ("review", "host"), "listen address (= --review.host)")
    add_setting_alias(p, "--port", ("review", "port"), "port (= --review.port)")


def _review_server(args: argparse.Namespace, settings: Settings) -> int:
    from autolabel.kafka.clients import BrokerNotConfigured, client_options
    from autolabel.review.web.server import run_server
    from autolabel.settings import MissingToken

    try:
        client_options(settings.kafka)  # a broker is configured
        settings.review.token_bytes()
    except (BrokerNotConfigured, MissingToken) as exc:  # say what to set, no traceback
        return _problem("review-server", exc)
    run_server(settings)  # until SIGINT/SIGTERM
    return 0


def _add_topics(sub: Subcommands) -> None:
    p = _command(sub, "topics", _topics, "create missing topics and check partition counts")
    p.add_argument("--check", action="store_true", help="only check, create nothing")


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    from aiokafka.errors import KafkaError

    from autolabel.kafka.clients import BrokerNotConfigured
    from autolabel.kafka.topics import ensure_topics

    try:
        statuses = asyncio.run(ensure_topics(settings, create=not args.check))
    except BrokerNotConfigured as exc:
        return _problem("topics", exc)
    except (KafkaError, OSError) as exc:
        return _kafka_failed("topics", settings, exc)
    problems = 0
    for status in statuses:
        state = "created" if status.created else ("ok" if not status.problem else "PROBLEM")
        print(f"{status.spec.name:40} partitions={status.partitions}  {state}")
        problems += status.problem is not None
    return 1 if problems else 0


def _add_produce(sub: Subcommands) -> None:
    p = _command(sub, "produce", _produce, "replay a CSV or JSONL file into the records topic")
    p.add_argument("file", type=Path, metavar="FILE", help="a .csv or .jsonl file (optionally .gz)")
    _example_columns(p)
    p.add_argument("--limit", type=COUNT, metavar="N", help="stop after N rows")
    p.add_argument(
        "--rate", type=POSITIVE, metavar="R", help="records per second (default: as fast as acked)"
    )
    p.add_argument(
        "--max-bad-rows",
        type=COUNT,
        default=0,
        metavar="N",
        help="rows that may be skipped (not a valid record) before the run fails; every"
        " skipped row is reported either way",
    )


def _produce(args: argparse.Namespace, settings: Settings) -> int:
    from aiokafka.errors import KafkaError

    from autolabel.kafka.clients import BrokerNotConfigured
    from autolabel.tools.replay import TooManyBadRows, produce_file

    try:
        asyncio.run(produce_file(settings, args))  # prints its own summary line
    except TooManyBadRows as exc:  # reported row by row above; the run failed
        print(f"autolabel produce: {exc}", file=sys.stderr)
        return 1
    except (ValueError, BrokerNotConfigured) as exc:  # bad file/row/args, no broker
        return _problem("produce", exc)
    except (KafkaError, OSError) as exc:
        return _kafka_failed("produce", settings, exc)
    return 0


def _add_demo(sub: Subcommands) -> None:
    p = _command(sub, "demo", _demo, "local broker + worker + replay + simulated reviewer")
    p.add_argument(
        "--records",
        type=POSITIVE_INT,
        metavar="N",
        help="replay the first N records (default: all 2,310; 860 with a person reviewing)",
    )
    p.add_argument(
        "--rate",
        type=POSITIVE,
        metavar="R",
        help="records per second (default 400; 5 with a person reviewing)",
    )
    p.add_argument(
        "--reviewer",
        choices=("simulated", "terminal"),
        default="simulated",
        help="who answers review requests: the simulated reviewer, or you at this terminal",
    )
    p.add_argument(
        "--undo-seconds",
        type=bounded(float, 0),
        default=5.0,
        metavar="SECONDS",
        help="with --reviewer terminal (see review)",
    )
    p.add_argument(
        "--review-delay",
        type=bounded(float, 0),
        default=0.3,
        metavar="SECONDS",
        help="the reviewer's time per answer",
    )
    p.add_argument(
        "--seed",
        type=COUNT,
        metavar="N",
        help="labeled rows checked and learned before the stream"
        " (default 800, at most a third of --records; 0: none)",
    )


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from autolabel.tools.demo import run_demo

    if args.reviewer == "terminal" and not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("autolabel demo: --reviewer terminal needs a terminal", file=sys.stderr)
        return 2
    if not settings.kafka.bootstrap_servers:  # it would start the local broker
        require(LOCAL_BROKER)
    return asyncio.run(run_demo(settings, args))


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in a container
        return "reviewer"


def _add_review(sub: Subcommands) -> None:
    p = _command(sub, "review", _review, "answer review requests at this terminal")
    p.add_argument(
        "--reviewer",
        default=_user(),
        metavar="NAME",
        help="your name in every answer (default: the login name)",
    )
    p.add_argument(
        "--group", metavar="GROUP", help="consumer group shared by reviewers (<app_id>-reviewers)"
    )
    p.add_argument(
        "--buffer", type=POSITIVE_INT, default=200, metavar="N", help="requests held, best first"
    )
    p.add_argument(
        "--undo-seconds",
        type=bounded(float, 0),
        default=5.0,
        metavar="SECONDS",
        help="an answer is held this long, or until the next answer, before it is sent",
    )


def _review(args: argparse.Namespace, settings: Settings) -> int:
    from aiokafka.errors import KafkaError

    from autolabel.kafka.clients import BrokerNotConfigured, client_options
    from autolabel.review.kafka_queue import ReviewQueue
    from autolabel.tools.terminal_review import run_review

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("autolabel review: needs a terminal (stdin and stdout)", file=sys.stderr)
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


def _add_evaluate(sub: Subcommands) -> None:
    p = _command(sub, "evaluate", _evaluate, "replay a labeled file offline through the same core")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, metavar="FILE", help="a .csv or .jsonl file")
    source.add_argument(
        "--stream",
        choices=SUITE_NAMES,
        metavar="NAME",
        help=f"a stream of the drift suite: {', '.join(SUITE_NAMES)}",
    )
    p.add_argument(
        "--variant",
        type=COUNT,
        default=0,
        metavar="V",
        help="with --stream: 0 the suite, others unseen streams",
    )
    p.add_argument(
        "--scale",
        type=bounded(float, 0, 1, low_open=True),
        default=1.0,
        metavar="S",
        help="with --stream: shorten it, in (0, 1]",
    )
    _example_columns(p, required=False)
    _policy_aliases(p)
    p.add_argument(
        "--review-delay", type=COUNT, default=0, metavar="K", help="answers arrive K records later"
    )
    p.add_argument(
        "--reviewer-error-rate",
        type=bounded(float, 0, 1, high_open=True),
        default=0.0,
        metavar="E",
        help="share of wrong answers, in [0, 1)",
    )
    p.add_argument(
        "--seed", type=Path, dest="seed_file", metavar="FILE", help="labeled seed set learned first"
    )
    p.add_argument(
        "--drift-at",
        type=positions,
        metavar="N[,M...]",
        help="known change point(s): measured, and kept in place by --orders",
    )
    p.add_argument(
        "--orders",
        type=COUNT,
        default=0,
        metavar="N",
        help="also replay N shuffled orders (within the segments between change points)",
    )
    p.add_argument(
        "--jobs", type=POSITIVE_INT, default=1, metavar="J", help="processes for --orders"
    )
    p.add_argument(
        "--json", type=output_file, dest="json_out", metavar="OUT", help="the report as JSON"
    )
    p.add_argument("--plot", type=output_file, metavar="OUT.png", help="a PNG of the run")
    p.add_argument(
        "--trace", type=output_file, metavar="OUT.csv", help="per-record decisions as CSV"
    )


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from autolabel.tools.evaluation_cli import run_evaluate

    if args.plot:  # before the run, not after it
        require(PLOTS)
    return run_evaluate(args, settings)


def _add_suite(sub: Subcommands) -> None:
    p = _command(sub, "suite", _suite, "evaluate every stream of the drift suite, one table")
    p.add_argument(
        "--variant", type=COUNT, default=0, metavar="V", help="0: the suite; others: unseen streams"
    )
    p.add_argument("--quick", action="store_true", help="short streams, 2 orders (for tests)")
    p.add_argument(
        "--orders", type=COUNT, metavar="N", help="shuffled orders per stationary stream (20)"
    )
    p.add_argument(
        "--segment-orders",
        type=COUNT,
        metavar="N",
        help="orders shuffled within segments per abrupt stream (8)",
    )
    p.add_argument(
        "--streams", metavar="A,B", help=f"comma-separated subset of: {', '.join(SUITE_NAMES)}"
    )
    p.add_argument("--jobs", type=POSITIVE_INT, default=2, metavar="J", help="worker processes")
    p.add_argument(
        "--out",
        type=output_folder,
        default=Path(".artifacts/suite"),
        metavar="DIR",
        help="results folder",
    )
    p.add_argument("--plots", action="store_true", help="a PNG per stream in OUT/plots-vN/")
    p.add_argument("--traces", action="store_true", help="a trace CSV per stream, OUT/traces-vN/")
    _policy_aliases(p)


def _suite(args: argparse.Namespace, settings: Settings) -> int:
    from autolabel.tools.suite_cli import run_suite_command

    if args.plots:
        require(PLOTS)
    return run_suite_command(args, settings)


def _add_seed(sub: Subcommands) -> None:
    p = _command(sub, "seed", _seed, "check a labeled seed set, then publish it as feedback")
    p.add_argument("file", type=Path, metavar="FILE", help="a .csv or .jsonl file (optionally .gz)")
    _example_columns(p)
    p.add_argument("--drop-suspicious", action="store_true", help="publish only clean rows")
    p.add_argument(
        "--folds",
        type=bounded(int, 2),
        default=5,
        metavar="K",
        help="cross-validation folds of the check",
    )
    p.add_argument("--show", type=COUNT, default=20, metavar="N", help="suspicious rows to print")
    p.add_argument("--dry-run", action="store_true", help="check only, publish nothing")


def _seed(args: argparse.Namespace, settings: Settings) -> int:
    from autolabel.tools.seeding import run_seed

    return run_seed(args, settings)


def _add_dataset(sub: Subcommands) -> None:
    p = _command(
        sub,
        "dataset",
        _dataset,
        "write a suite stream as CSV or JSON Lines (for evaluate/produce)",
        settings=False,
    )
    p.add_argument(
        "name", choices=SUITE_NAMES, metavar="NAME", help=f"one of: {', '.join(SUITE_NAMES)}"
    )
    p.add_argument(
        "out",
        type=output_file,
        metavar="OUT",
        help="OUT.csv, or OUT.jsonl / OUT.json (JSON Lines); a .gz suffix compresses",
    )
    p.add_argument(
        "--variant", type=COUNT, default=0, metavar="V", help="0: the suite; others: unseen streams"
    )


def _dataset(args: argparse.Namespace, settings: Settings) -> int:
    from autolabel.tools.datasets import export, meta_path

    try:
        stream = export(args.name, args.out, variant=args.variant)
    except (ValueError, OSError) as exc:
        return _problem("dataset", exc)
    points = ", ".join(map(str, stream.change_points)) or "none"
    print(
        f"wrote {len(stream.rows)} rows to {args.out} ({stream.kind}; change points: {points});"
        f" metadata in {meta_path(args.out)}"
    )
    return 0


def _add_label_studio(sub: Subcommands) -> None:
    _command(
        sub,
        "label-studio",
        _label_studio,
        "bridge review requests to a Label Studio project and its annotations back",
    )


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
        return _problem("label-studio", exc)

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


def _add_schemas(sub: Subcommands) -> None:
    p = _command(
        sub, "schemas", _schemas, "write JSON Schemas and examples into schemas/", settings=False
    )
    p.add_argument("--out", type=Path, default=Path("schemas"), metavar="DIR", help="folder")
    p.add_argument("--check", action="store_true", help="fail if the files are out of date")


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
