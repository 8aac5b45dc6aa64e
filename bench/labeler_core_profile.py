"""Per-record CPU cost of the labeler's hot path, stage by stage, with no broker.

    python bench/labeler_core_profile.py [--records 200000] [--batch 1000] [--repeat 3]
    python bench/labeler_core_profile.py --cprofile OUT.prof   # + the top functions

What :class:`autolabel.worker.labeler.LabelerService` does with each fetched batch, in
process, on the throughput bench's data set (``bench/throughput.py::generate``):

fetch      building the batch's messages, as aiokafka builds its records
route      ``LabelerCore.route``: decode (``core/codec.py``), predict with the view's
           model, decide (``trust/policy.py``, audit draws included)
encode     ``encode_batch``: labels, review requests (signed request ids:
           ``core/requests.py``), the batch's confidence signal
metrics    the tally and ``Metrics.count_batch``, as the labeler calls them

The view is the one a labeler uses in the bench: a ``TrustController`` with the
worker's default settings (``cold_start_examples=10`` like the bench) learns seed
answers from the warm-up stream, 1,250 and then steps of 250 until it is certified,
and the labeler decides with ``controller.view()`` of a snapshot of it (encoded,
signed and decoded, as model sync does). The garbage collector is set up as the
worker sets it up (``--gc default``: Python's defaults). Each figure is CPU time (µs
per record), the best of ``--repeat`` passes over the same records; the time the
garbage collector took during them is shown too (it is part of the stages' times).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from prometheus_client import CollectorRegistry

from autolabel.cli import GC_THRESHOLD
from autolabel.core.labeling import Inbound, LabelerCore
from autolabel.core.messages import Feedback, FeedbackSource, Record
from autolabel.core.outputs import encode_batch
from autolabel.core.requests import Admitted, RequestIssuer
from autolabel.core.signing import Signer
from autolabel.core.snapshot import SNAPSHOT_PURPOSE, decode_snapshot, encode_snapshot
from autolabel.settings import Settings
from autolabel.trust.controller import TrustController
from autolabel.trust.policy import LabelerView
from autolabel.worker.learner import controller_config
from autolabel.worker.metrics import Metrics
from throughput import DataSet

SECRET = b"p" * 32
CLOCK = time.process_time  # CPU time of this process: steadier than wall time when shared
STAGES = ("fetch", "route", "encode", "metrics")


def certified_view(settings: Settings, first: int = 1250, step: int = 250) -> LabelerView:
    """The view of a snapshot of a controller warmed up like the bench's worker."""
    from throughput import WARMUP_MAX, generate  # the same warm-up stream as the bench

    warm = generate(WARMUP_MAX, seed=4, prefix="w", keep_features=True)
    controller = TrustController(controller_config(settings))
    learned, target = 0, first
    while True:
        for i in range(learned, target):
            rid = warm.keys[i].decode()
            feedback = Feedback(
                id=rid,
                record=Record(id=rid, features=warm.features[i]),
                label=warm.labels[i],
                source=FeedbackSource.SEED,
            )
            controller.absorb(Admitted(feedback, FeedbackSource.SEED, 1.0, None, None), i)
        learned = target
        if controller.view().accepting or target >= WARMUP_MAX:
            break
        target = min(target + step, WARMUP_MAX)
    signer = Signer(SECRET, SNAPSHOT_PURPOSE)
    raw = encode_snapshot(controller, signer, writer="profile")
    view = decode_snapshot(raw, signer).controller.view()
    status = controller.status()
    print(
        f"view: {learned:,} seed answers, accepting={view.accepting},"
        f" model {getattr(status, 'chosen', '?')}, version {view.model_version},"
        f" threshold {view.certificate.global_threshold:.4f}, audit rate {view.audit_rate}",
        file=sys.stderr,
    )
    return view


def fetched(
    keys: list[bytes], values: list[bytes], start: int, stop: int, partitions: int = 4
) -> list[Inbound]:
    """One fetched batch, built when fetched (as aiokafka does): the process holds only
    the raw bytes of the data set, so the heap the garbage collector walks stays close
    to a worker's."""
    return [
        Inbound("records", i % partitions, i // partitions, keys[i], values[i])
        for i in range(start, stop)
    ]


class GcClock:
    """CPU time spent in the garbage collector (``gc.callbacks``), and collections per
    generation: the hot path's allocations pay for these."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = CLOCK()
        else:
            self.seconds[info["generation"]] += CLOCK() - self._started
            self.collections[info["generation"]] += 1

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


def run_pass(
    data: DataSet,
    view: LabelerView,
    settings: Settings,
    batch_size: int,
    spent: dict[str, float],
    tally: Counter[str],
) -> None:
    """One labeler's work over ``data``, batch by batch, timing each stage."""
    issuer = RequestIssuer(SECRET)
    core = LabelerCore(issuer, view)
    metrics = Metrics(CollectorRegistry())
    s = settings.labeler
    keys, values = data.keys, data.values
    for start in range(0, len(keys), batch_size):
        t0 = CLOCK()
        batch = fetched(keys, values, start, min(start + batch_size, len(keys)))
        t1 = CLOCK()
        routed = core.route(
            batch, max_message_bytes=s.max_message_bytes, max_abs_number=s.max_abs_number
        )
        t2 = CLOCK()
        outputs, sent = encode_batch(
            routed, issuer, settings.topics, worker="w1", max_output_bytes=s.max_output_bytes
        )
        t3 = CLOCK()
        accepted, reviewed, dead = sent.tally()
        metrics.count_batch(
            len(batch),
            accepted,
            reviewed,
            dead,
            sent.confidences(),
            0.01,
        )
        metrics.labeler_hold.set(1 if core.hold else 0)
        t4 = CLOCK()
        spent["fetch"] += t1 - t0
        spent["route"] += t2 - t1
        spent["encode"] += t3 - t2
        spent["metrics"] += t4 - t3
        for output in outputs:
            tally[output.topic.rsplit(".", 1)[-1]] += 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000, help="records per fetched batch")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cprofile", metavar="OUT.prof", help="also profile one pass")
    parser.add_argument("--top", type=int, default=30, help="functions shown with --cprofile")
    parser.add_argument(
        "--gc",
        choices=("worker", "default"),
        default="worker",
        help="the worker's collector settings (autolabel.cli: freeze at start, a gen-0"
        " threshold of GC_THRESHOLD), or Python's defaults",
    )
    args = parser.parse_args(argv)

    from throughput import generate

    if args.gc == "worker":  # as `autolabel worker` does before the Faust worker starts
        gc.freeze()
        gc.set_threshold(GC_THRESHOLD, 20, 20)
    settings = Settings(policy={"cold_start_examples": 10})  # type: ignore[arg-type]
    view = certified_view(settings)
    data = generate(args.records, seed=1, prefix="b")
    n = len(data)
    gc.collect()
    print(f"heap: {len(gc.get_objects()):,} objects tracked by the garbage collector")
    rows: list[tuple[float, dict[str, float], GcClock, Counter[str]]] = []
    for _ in range(args.repeat):
        spent = dict.fromkeys(STAGES, 0.0)
        tally: Counter[str] = Counter()
        with GcClock() as gc_clock:
            run_pass(data, view, settings, args.batch, spent, tally)
        rows.append((sum(spent.values()), spent, gc_clock, tally))
    total, spent, gc_clock, tally = min(rows, key=lambda row: row[0])
    print(
        f"{n:,} records in batches of {args.batch}, best of {args.repeat}; outputs: "
        + ", ".join(f"{k} {v / n:.1%}" for k, v in sorted(tally.items()))
    )
    for stage in STAGES:
        print(f"  {stage:<8} {spent[stage] / n * 1e6:6.2f} µs/record")
    print(f"  {'total':<8} {total / n * 1e6:6.2f} µs/record")
    print(
        f"  of which garbage collection {sum(gc_clock.seconds) / n * 1e6:.2f} µs/record;"
        " by generation: "
        + ", ".join(
            f"{gen}: {count:,} collections, {seconds / n * 1e6:.2f} µs/record"
            for gen, (count, seconds) in enumerate(
                zip(gc_clock.collections, gc_clock.seconds, strict=True)
            )
        )
    )

    if args.cprofile:
        profiler = cProfile.Profile()
        profiler.runcall(
            run_pass, data, view, settings, args.batch, dict.fromkeys(STAGES, 0.0), Counter()
        )
        profiler.dump_stats(args.cprofile)
        pstats.Stats(args.cprofile).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
