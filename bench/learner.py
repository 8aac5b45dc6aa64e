"""Per-feedback cost of the learner's core, stage by stage, with no broker.

    python bench/learner.py [--data segments,synthetic] [--repeat 3]

For each data set, every example becomes a ``Feedback`` answering a signed review
request, encoded to bytes as a producer would send it. Then, per message:

decode        ``codec.decode_feedback(...)``, as the learner loop calls it
admit         the request-ticket check (``requests.admit``)
absorb        ``TrustController.absorb`` with default settings, a fresh controller:
              everything the learner does with an answer; of which (timers around the
              controller's own calls, in that same run):
  predict_one   the prequential prediction (``OnlineClassifier.predict_one``)
  learn         ``OnlineClassifier.learn``, finiteness check included
  calibrate     re-certification (every ``calibrate_every`` answers), amortised
  controller    the rest: dedupe, evidence, drift detectors, counters
  finite check  the finiteness check alone, on the learned model (part of learn)
River reference, a separate default pipeline:
  river learn   ``Pipeline.learn_one`` over the stream, from a fresh pipeline
  river predict ``Pipeline.predict_proba_one`` over the stream, on that learned pipeline

Data: River's ImageSegments (2,310 rows, 19 numbers, 7 classes) and the throughput
bench's synthetic stream (5,000 rows of 10 Gaussian numbers + a categorical ``region``,
4 classes; ``bench/throughput.py::generate``). Each figure is CPU time (µs per message),
the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from autolabel.core.codec import decode_feedback
from autolabel.core.messages import Feedback, FeedbackSource, Record, ReviewReason
from autolabel.core.requests import RequestIssuer, admit
from autolabel.model.classifier import model_input
from autolabel.model.factory import build_model
from autolabel.model.finite import touched_state_is_finite
from autolabel.settings import ModelSettings, PolicySettings
from autolabel.trust.controller import ControllerConfig, TrustController

STAGES = (
    "decode",
    "admit",
    "absorb",
    "  predict_one",
    "  learn",
    "  calibrate",
    "  controller",
    "  finite check",
    "river learn",
    "river predict",
)


def segments() -> list[tuple[Record, str]]:
    from autolabel.tools.demo import segment_records

    return segment_records()


def synthetic(n: int = 5000) -> list[tuple[Record, str]]:
    from throughput import generate  # bench/throughput.py: the same stream the bench sends

    data = generate(n, seed=1, prefix="s", keep_features=True)
    return [
        (Record(id=key.decode(), features=features), label)
        for key, features, label in zip(data.keys, data.features, data.labels, strict=True)
    ]


def answers(examples: list[tuple[Record, str]], issuer: RequestIssuer) -> list[bytes]:
    out = []
    for record, label in examples:
        rid = issuer.issue(
            record, ReviewReason.UNCERTAIN, audit_rate=0.05, model_version=1, epoch=0
        )
        feedback = Feedback(
            id=record.id, record=record, label=label, source=FeedbackSource.REVIEW, request_id=rid
        )
        out.append(feedback.model_dump_json().encode())
    return out


CLOCK = time.process_time  # CPU time of this process: steadier than wall time when shared


def timed(f: Callable[[], Any]) -> float:
    start = CLOCK()
    f()
    return CLOCK() - start


def stopwatch(f: Callable[..., Any], spent: dict[str, float], stage: str) -> Callable[..., Any]:
    def timed_call(*args: Any) -> Any:
        start = CLOCK()
        try:
            return f(*args)
        finally:
            spent[stage] += CLOCK() - start

    return timed_call


def run_once(raws: list[bytes], issuer: RequestIssuer) -> dict[str, float]:
    n = len(raws)
    seconds: dict[str, float] = {}
    fbs: list[Any] = []
    seconds["decode"] = timed(
        lambda: fbs.extend(decode_feedback(raw, max_bytes=10**6) for raw in raws)
    )
    items: list[Any] = []
    seconds["admit"] = timed(lambda: items.extend(admit(fb, issuer) for fb in fbs))

    def absorb_all(controller: TrustController) -> None:
        for offset, item in enumerate(items):
            controller.absorb(item, offset)

    config = ControllerConfig(ModelSettings(), PolicySettings())
    controller = TrustController(config)
    seconds["absorb"] = timed(lambda: absorb_all(controller))
    # Again with timers around the controller's calls into the model (instance
    # attributes of this second controller): the breakdown. The timers cost a few
    # clock reads per message, which the "controller" remainder absorbs.
    controller = TrustController(config)
    spent = {"  predict_one": 0.0, "  learn": 0.0, "  calibrate": 0.0}
    clf = controller.classifier
    clf.predict_one = stopwatch(clf.predict_one, spent, "  predict_one")  # type: ignore[method-assign]
    clf.learn = stopwatch(clf.learn, spent, "  learn")  # type: ignore[method-assign]
    controller.calibrate = stopwatch(controller.calibrate, spent, "  calibrate")  # type: ignore[method-assign]
    timed_absorb = timed(lambda: absorb_all(controller))
    seconds.update(spent)
    seconds["  controller"] = timed_absorb - sum(spent.values())
    model = controller.classifier._models["features"]
    check = finite_check(model)
    xs = [model_input(fb.record) for fb in fbs]
    seconds["  finite check"] = timed(lambda: [check(x) for x in xs])

    river = build_model("features", ModelSettings())
    seconds["river learn"] = timed(
        lambda: [river.learn_one(x, fb.label) for x, fb in zip(xs, fbs, strict=True)]
    )
    seconds["river predict"] = timed(lambda: [river.predict_proba_one(x) for x in xs])
    return {stage: s / n * 1e6 for stage, s in seconds.items()}


def finite_check(model: Any) -> Callable[[Any], bool]:
    try:
        from autolabel.model.finite import FiniteCheck
    except ImportError:  # before FiniteCheck existed: the function was the check
        return lambda x: touched_state_is_finite(model, x)
    return FiniteCheck(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="segments,synthetic")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    issuer = RequestIssuer(b"k" * 32)
    sources = {"segments": segments, "synthetic": synthetic}
    names = args.data.split(",")
    results = {}
    for name in names:
        raws = answers(sources[name](), issuer)
        runs = [run_once(raws, issuer) for _ in range(args.repeat)]
        results[name] = {stage: min(r[stage] for r in runs) for stage in STAGES}
        results[name]["messages"] = len(raws)
    print(f"{'CPU µs/feedback':20}" + "".join(f"{name:>12}" for name in names))
    for stage in STAGES:
        print(f"{stage:20}" + "".join(f"{results[name][stage]:12.1f}" for name in names))
    total = {n: results[n]["decode"] + results[n]["admit"] + results[n]["absorb"] for n in names}
    print(f"{'decode+admit+absorb':20}" + "".join(f"{total[n]:12.1f}" for n in names))
    print(f"{'feedback/s':20}" + "".join(f"{1e6 / total[n]:12,.0f}" for n in names))


if __name__ == "__main__":
    main()
