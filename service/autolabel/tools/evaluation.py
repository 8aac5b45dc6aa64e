"""``autolabel evaluate``: the service's own core, replayed offline as a prequential stream.

Records are labeled in file order by :class:`~autolabel.core.labeling.LabelerCore`
(the labeler's code), and every review request is answered by a simulated
reviewer from the file's true label, optionally ``review_delay`` records later
and with a share of reviewer mistakes; the answers go through
:func:`~autolabel.core.requests.admit` and
:meth:`~autolabel.trust.controller.TrustController.absorb` (the learner's code). Accepted
records teach the model nothing, exactly as in the service: only reviewed and
audited records come back as feedback.

The same stream is replayed with a fixed 0.9 threshold, and the *oracle* is
the single threshold that, in hindsight, would have met the target on the
main run's own scores with the most automation. :func:`replay_order` replays the
stream in a shuffled order (within the segments between known changes), so that
many orders give a rate rather than one anecdote.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from autolabel.core.codec import encode
from autolabel.core.labeling import Inbound, LabelerCore
from autolabel.core.messages import (
    ConfidenceSignal,
    Feedback,
    FeedbackSource,
    Record,
    ReviewReason,
)
from autolabel.core.requests import RequestIssuer, admit
from autolabel.settings import Settings
from autolabel.tools.stream_metrics import measure, scored_oracle
from autolabel.trust.controller import ControllerConfig, Outcome, TrustController

Example = tuple[Record, str]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ReviewerModel:
    """How the simulated reviewer behaves."""

    delay: int = 0  # answers arrive this many records after the request
    error_rate: float = 0.0  # share of answers that are a wrong (random other) label
    seed: int = 0


@dataclass(slots=True)
class StreamRun:
    """Per-record outcome of one replay (index = position in the stream).

    ``accepting`` says whether the labeler could auto-accept anything when the record
    came (certified and not in drift fallback or held); ``threshold`` is the confidence
    threshold the record was decided with (``inf`` when nothing could be accepted);
    ``model_version`` is the version of the model that predicted it.
    """

    truth: list[str] = field(default_factory=list)
    accepted: list[bool] = field(default_factory=list)
    reason: list[str] = field(default_factory=list)
    predicted: list[str | None] = field(default_factory=list)
    confidence: list[float | None] = field(default_factory=list)
    final_label: list[str | None] = field(default_factory=list)
    drift_at: list[int] = field(default_factory=list)
    promoted_at: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    accepting: list[bool] = field(default_factory=list)
    threshold: list[float | None] = field(default_factory=list)
    model_version: list[int] = field(default_factory=list)
    # every candidate's label-time prediction (confidence, label), by candidate name: the
    # oracle is the best candidate's best threshold in hindsight
    candidate_scores: dict[str, list[tuple[float | None, str | None]]] = field(default_factory=dict)

    def summary(self, start: int = 0, stop: int | None = None) -> dict[str, Any]:
        """Automation and precision over records ``[start, stop)``."""
        idx = range(start, len(self.truth) if stop is None else stop)
        n = len(idx)
        acc = [i for i in idx if self.accepted[i]]
        right = sum(self.predicted[i] == self.truth[i] for i in acc)
        return {
            "n_records": n,
            "auto_accepted": len(acc),
            "automation_rate": len(acc) / n if n else 0.0,
            "auto_precision": right / len(acc) if acc else None,
            "auto_errors": len(acc) - right,
        }


def replay(
    examples: Sequence[Example],
    settings: Settings,
    reviewer: ReviewerModel,
    seed_examples: Sequence[Example] = (),
    on_progress: Callable[[int], None] | None = None,
    *,
    score_candidates: bool = True,
) -> StreamRun:
    """Run the labeler and learner cores over ``examples`` in order.

    One labeler: after every record it decides with the view the controller publishes
    then (a worker's labeler gets it a snapshot later), and its confidence signals reach
    the controller at once. With ``score_candidates`` every candidate model also scores
    every record (for the best candidate's oracle; the service does not do that).
    """
    controller = TrustController(
        ControllerConfig(
            model=settings.model,
            policy=settings.policy,
            top_k=settings.labeler.top_k,
            accuracy_window=settings.learner.accuracy_window,
            dedupe_window=settings.learner.dedupe_window,
        )
    )
    # A key of its own, fixed by the policy seed: audits are drawn from it, so a replay
    # is repeatable and the seed gives other (equally likely) audit draws.
    issuer = RequestIssuer(hashlib.sha256(f"evaluate/{settings.policy.seed}".encode()).digest())
    labeler = LabelerCore(issuer, controller.view())
    offset = 0

    def learn(feedback: Feedback) -> Outcome:
        nonlocal offset
        offset += 1
        return controller.absorb(admit(feedback, issuer), offset - 1)

    for record, label in seed_examples:
        learn(Feedback(id=record.id, record=record, label=label, source=FeedbackSource.SEED))
    rng = random.Random(reviewer.seed)
    classes: set[str] = {label for _, label in seed_examples}
    pending: deque[tuple[int, Feedback, int]] = deque()  # (due index, feedback, row)
    run = StreamRun()
    topic = settings.topics.records
    max_bytes = settings.labeler.max_message_bytes

    def deliver(now: int) -> None:
        while pending and pending[0][0] <= now:
            _, feedback, row = pending.popleft()
            outcome = learn(feedback)
            if outcome.drift_events:
                run.drift_at.append(row)
            if outcome.promoted:
                run.promoted_at.append(row)

    for i, (record, truth) in enumerate(examples):
        deliver(i)
        labeler.swap(controller.view())
        view = labeler.view
        inbound = Inbound(topic, 0, i, record.id.encode(), encode(record))
        routed = labeler.route(
            [inbound], max_message_bytes=max_bytes, max_abs_number=settings.labeler.max_abs_number
        )
        if routed.chunk_means or routed.alarm:
            signal = ConfidenceSignal(
                worker="evaluate",
                epoch=view.epoch,
                model_version=view.model_version,
                records=routed.records,
                chunk_means=routed.chunk_means,
                alarm=routed.alarm,
            )
            if controller.observe_signal(signal).drift_events:
                run.drift_at.append(i)
        item = routed.items[0]
        prediction, decision = item.prediction, item.decision
        if score_candidates:
            _score_candidates(run, controller, record, i)
        run.ids.append(record.id)
        run.accepting.append(view.accepting and not routed.hold)
        run.threshold.append(decision.threshold if decision is not None else None)
        run.model_version.append(view.model_version)
        run.truth.append(truth)
        classes.add(truth)
        run.predicted.append(prediction.label if prediction else None)
        run.confidence.append(prediction.confidence if prediction else None)
        if decision is None:  # the file held a record the service would reject
            run.accepted.append(False)
            run.reason.append("dead_letter")
            run.final_label.append(None)
        elif decision.accept:
            run.accepted.append(True)
            run.reason.append(decision.reason.value)
            run.final_label.append(prediction.label if prediction else None)
        else:
            reason = ReviewReason(decision.reason)
            given = _answer(truth, classes, reviewer.error_rate, rng)
            run.accepted.append(False)
            run.reason.append(reason.value)
            run.final_label.append(given)
            request_id = issuer.issue(
                record,
                reason,
                audit_rate=view.audit_rate,
                model_version=view.model_version,
                epoch=view.epoch,
            )
            source = FeedbackSource.AUDIT if reason is ReviewReason.AUDIT else FeedbackSource.REVIEW
            feedback = Feedback(
                id=record.id,
                record=record,
                label=given,
                source=source,
                reviewer="simulated",
                request_id=request_id,
            )
            pending.append((i + reviewer.delay, feedback, i))
        if on_progress is not None and i % 250 == 0:
            on_progress(i)
    deliver(len(examples) + reviewer.delay)  # answers still on their way
    return run


def _score_candidates(run: StreamRun, controller: TrustController, record: Record, i: int) -> None:
    """Each candidate's prediction for record ``i`` (the one in use first for its name)."""
    seen: set[str] = set()
    ordered = [controller.candidates[controller.chosen], *controller.candidates]
    for candidate in ordered:
        if candidate.name in seen:
            continue
        seen.add(candidate.name)
        try:
            p = candidate.model.predict_one(record)
        except (ValueError, ArithmeticError):
            p = None
        scores = run.candidate_scores.setdefault(candidate.name, [(None, None)] * i)
        scores.append((p.confidence, p.label) if p else (None, None))
    for scores in run.candidate_scores.values():
        if len(scores) <= i:
            scores.append((None, None))


def _answer(truth: str, classes: set[str], error_rate: float, rng: random.Random) -> str:
    if error_rate and rng.random() < error_rate and len(classes) > 1:
        return rng.choice(sorted(classes - {truth}))
    return truth


def evaluate(
    examples: Sequence[Example],
    settings: Settings,
    reviewer: ReviewerModel,
    *,
    seed_examples: Sequence[Example] = (),
    drift_at: int | None = None,
    change_points: Sequence[int] = (),
    on_progress: Callable[[str, int], None] | None = None,
) -> tuple[dict[str, Any], StreamRun]:
    """The report ``autolabel evaluate`` prints and writes as JSON, and the main run.

    ``change_points`` (or ``drift_at``, one of them) are where the stream is known to
    change: the report measures the response to each
    (:func:`~autolabel.tools.stream_metrics.change_response`).
    """

    def progress(name: str) -> Callable[[int], None] | None:
        return (lambda i: on_progress(name, i)) if on_progress else None

    main = replay(examples, settings, reviewer, seed_examples, progress("certified"))
    fixed_policy = settings.policy.model_copy(update={"mode": "fixed", "confidence_threshold": 0.9})
    fixed = replay(
        examples,
        settings.model_copy(update={"policy": fixed_policy}),
        reviewer,
        seed_examples,
        progress("fixed_0.9"),
    )
    n = len(examples)
    summary = main.summary()
    final_right = sum(
        label is not None and label == truth
        for label, truth in zip(main.final_label, main.truth, strict=True)
    )
    oracle = scored_oracle(main, settings.policy.target_precision)
    if not change_points and drift_at is not None:
        change_points = (drift_at,)
    report: dict[str, Any] = {
        "n_records": n,
        "target_precision": settings.policy.target_precision,
        "delta": settings.policy.delta,
        "audit_rate": settings.policy.audit_rate,
        "model": settings.model.tabular,
        "reviewer": {"delay": reviewer.delay, "error_rate": reviewer.error_rate},
        "seed_examples": len(seed_examples),
        "automation_rate": summary["automation_rate"],
        "auto_precision": summary["auto_precision"],
        "auto_accepted": summary["auto_accepted"],
        "auto_errors": summary["auto_errors"],
        "reviews": dict(
            Counter(r for r, a in zip(main.reason, main.accepted, strict=True) if not a)
        ),
        "final_accuracy": final_right / n if n else 0.0,
        "drift_events_at": main.drift_at,
        "model_promotions_at": main.promoted_at,
        "oracle_ratio": (
            summary["automation_rate"] / oracle["automation_rate"]
            if oracle["automation_rate"]
            else None
        ),
        "baselines": {
            "fixed_0.9": {k: fixed.summary()[k] for k in ("automation_rate", "auto_precision")},
            "oracle": oracle,
        },
    }
    report["change_points"] = list(change_points)
    report["stream"] = measure(main, settings.policy.target_precision, change_points)
    if drift_at is not None and 0 < drift_at < n:
        report["before_drift"] = main.summary(0, drift_at)
        report["after_drift"] = main.summary(drift_at)
        report["last_fifth"] = main.summary(n - n // 5)
        report["baselines"]["fixed_0.9"]["after_drift"] = fixed.summary(drift_at)
    return report, main


def shuffled(items: Sequence[T], seed: int, segments: Sequence[int] = ()) -> list[T]:
    """``items`` in another order, drawn with ``seed``: shuffled within each segment
    between the given change points (the whole sequence when there are none), so every
    change stays where it was.

    >>> shuffled(range(6), seed=1, segments=[3])
    [1, 2, 0, 5, 3, 4]
    """
    rng = random.Random(seed)
    out = list(items)
    bounds = [0, *sorted(c for c in segments if 0 < c < len(out)), len(out)]
    for a, b in itertools.pairwise(bounds):
        part = out[a:b]
        rng.shuffle(part)
        out[a:b] = part
    return out


def replay_order(
    examples: Sequence[Example],
    settings: Settings,
    reviewer: ReviewerModel,
    order: int,
    segments: Sequence[int] = (),
    *,
    change_points: Sequence[int] = (),
    seed_examples: Sequence[Example] = (),
) -> dict[str, Any]:
    """The stream measures of one shuffled order (``order`` seeds the shuffle)."""
    run = replay(shuffled(examples, order, segments), settings, reviewer, seed_examples)
    return measure(run, settings.policy.target_precision, change_points)


def rolling(
    run: StreamRun, window: int = 200, min_accepted: int = 1
) -> tuple[list[float], list[float | None]]:
    """Automation rate and precision of accepted labels over a trailing window (the
    precision only where the window holds at least ``min_accepted`` of them)."""
    automation: list[float] = []
    precision: list[float | None] = []
    acc: deque[tuple[bool, bool]] = deque()
    n_acc = n_right = 0
    for accepted, pred, truth in zip(run.accepted, run.predicted, run.truth, strict=True):
        item = (accepted, accepted and pred == truth)
        acc.append(item)
        n_acc += item[0]
        n_right += item[1]
        if len(acc) > window:
            old = acc.popleft()
            n_acc -= old[0]
            n_right -= old[1]
        automation.append(n_acc / len(acc))
        precision.append(n_right / n_acc if n_acc and n_acc >= min_accepted else None)
    return automation, precision
