"""Prometheus metrics, built against an injected registry.

Names follow Prometheus conventions: ``autolabel_`` prefix, ``_total``
counters, ``_seconds`` histograms, ``_ratio`` gauges for shares in [0, 1]
(accuracy, precision, audit shares), and only bounded label values (fixed
reasons, outcomes, sources and partition numbers). Known label values are
created up front so their series exist at zero. A value that does not exist
yet (no certificate, no audit, no probe, no snapshot published) is NaN, not 0.
The registry also carries the process and Python collectors (``process_*``,
``python_*``) and ``autolabel_build_info``.

Renamed gauges are exported under their old name too for one release, with a
help text that says which name replaces them (:data:`DEPRECATED_NAMES`).

Every worker exports what its labeler does and the view it decides with (model
version, threshold, fallback); only the active learner exports the learner's
gauges (``autolabel_learner_active`` says which one is), so aggregate those with
``max`` across replicas, and a cold or standby replica never masks the others.

>>> from prometheus_client import CollectorRegistry, generate_latest
>>> m = Metrics(CollectorRegistry())
>>> m.decisions.labels(outcome="accept", reason="confident").inc()
>>> series = b'autolabel_decisions_total{outcome="accept",reason="confident"} 1.0'
>>> series in generate_latest(m.registry)
True
"""

from __future__ import annotations

import math
import platform
import typing
from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Sequence
from importlib import metadata

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from autolabel.core.messages import AcceptReason, DeadLetterReason, FeedbackSource, ReviewReason
from autolabel.core.snapshot import RejectReason
from autolabel.trust.controller import ControllerStatus
from autolabel.trust.drift import DriftEvent, DriftSignal
from autolabel.trust.policy import LabelerView


class ReviewAnswer(typing.NamedTuple):
    """One learned answer to a review request, as the people metrics count it (its
    reason and issue time from the verified ticket, never from the answer)."""

    reason: ReviewReason
    issued_at_ms: int
    reviewer: str | None
    disagrees: bool | None  # with the model's prediction, scored before learning it


ANSWER_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400)
"""Seconds from a review request's issue to its answer being learned: a second to a day."""
OTHER_REVIEWER = "other"
UNNAMED_REVIEWER = "unnamed"
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
SNAPSHOT_REJECT_REASONS: tuple[str, ...] = typing.get_args(RejectReason)
BATCH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
DEPRECATED_NAMES = {
    "autolabel_prequential_accuracy": "autolabel_prequential_accuracy_ratio",
    "autolabel_audit_error_rate": "autolabel_audit_error_ratio",
    "autolabel_audit_rate": "autolabel_audit_ratio",
    "autolabel_target_precision": "autolabel_target_precision_ratio",
    "autolabel_certified_precision_lower_bound": "autolabel_certified_precision_lower_bound_ratio",
}
"""Old name -> new name of the gauges renamed to ``_ratio``; both are exported for one release."""
BUILD_PACKAGES = {"river": "river", "aiokafka": "aiokafka", "faust": "faust-streaming"}


def build_labels() -> dict[str, str]:
    """The labels of ``autolabel_build_info``: this release and what it runs on.

    >>> sorted(build_labels())
    ['aiokafka', 'faust', 'python', 'river', 'version']
    """
    labels = {"version": _version("autolabel"), "python": platform.python_version()}
    return labels | {label: _version(dist) for label, dist in BUILD_PACKAGES.items()}


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


class RatioGauge:
    """A ``_ratio`` gauge also exported, for one release, under the name it replaces.

    >>> from prometheus_client import CollectorRegistry
    >>> r = CollectorRegistry()
    >>> g = RatioGauge("autolabel_audit_ratio", "Share audited.", r)
    >>> g.set(0.05)
    >>> r.get_sample_value("autolabel_audit_ratio"), r.get_sample_value("autolabel_audit_rate")
    (0.05, 0.05)
    """

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        (old,) = (o for o, new in DEPRECATED_NAMES.items() if new == name)
        self.gauge = Gauge(name, documentation, registry=registry)
        self.deprecated = Gauge(
            old, f"Deprecated, use {name} (same value). {documentation}", registry=registry
        )

    def set(self, value: float) -> None:
        self.gauge.set(value)
        self.deprecated.set(value)


class BatchHistogram(Collector):
    """A histogram fed a whole batch at a time (one numpy pass instead of a locked
    ``observe`` per record); exported exactly like a client-library histogram.

    >>> h = BatchHistogram("x_seconds", "doc", (0.5, 1.0))
    >>> h.observe_many([0.2, 0.5, 0.7, 3.0])
    >>> [(s.labels.get("le"), s.value) for s in next(iter(h.collect())).samples][:3]
    [('0.5', 2.0), ('1.0', 3.0), ('+Inf', 4.0)]
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self._name, self._doc = name, documentation
        self._edges = np.asarray(buckets, dtype=float)
        self._counts = np.zeros(len(buckets) + 1, dtype=np.int64)  # last: above every edge
        self._sum = 0.0

    def observe_many(self, values: Sequence[float]) -> None:
        if len(values) == 0:
            return
        array = np.asarray(values, dtype=float)
        slots = np.searchsorted(self._edges, array, side="left")  # first edge >= value
        self._counts += np.bincount(slots, minlength=len(self._counts))
        self._sum += float(array.sum())

    def collect(self) -> Iterator[HistogramMetricFamily]:
        cumulative = np.cumsum(self._counts).astype(float).tolist()
        labels = [floatToGoString(e) for e in self._edges] + ["+Inf"]
        yield HistogramMetricFamily(
            self._name,
            self._doc,
            buckets=list(zip(labels, cumulative, strict=True)),
            sum_value=self._sum,
        )


class BoundedLabels:
    """Label values for free-form names, bounded: the first ``limit`` distinct names keep
    their own value, every later one is ``other`` (so a metric has at most ``limit + 1``
    series whatever clients send).

    >>> reviewers = BoundedLabels(2)
    >>> [reviewers.value(n) for n in ("ada", "bob", "ada", "cy", None)]
    ['ada', 'bob', 'ada', 'other', 'other']
    >>> BoundedLabels(3).value(None), BoundedLabels(3).value("")
    ('unnamed', 'unnamed')
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._known: set[str] = set()

    def value(self, name: str | None) -> str:
        name = name or UNNAMED_REVIEWER
        if name in self._known:
            return name
        if len(self._known) < self.limit and name != OTHER_REVIEWER:
            self._known.add(name)
            return name
        return OTHER_REVIEWER


class Metrics:
    """Every metric the worker exports.

    ``max_reviewers``: reviewer names with a series of their own in
    ``autolabel_review_answers_by_reviewer_total`` (see :class:`BoundedLabels`).
    """

    def __init__(self, registry: CollectorRegistry, *, max_reviewers: int = 20) -> None:
        self.registry = registry
        r = registry
        # ---------------------------------------------------------------- labeler
        self.records_consumed = Counter(
            "autolabel_records_consumed_total", "Messages read from the records topic.", registry=r
        )
        self.decisions = Counter(
            "autolabel_decisions_total",
            "Routing decisions for valid records, by outcome and reason.",
            ["outcome", "reason"],
            registry=r,
        )
        self.dead_letters = Counter(
            "autolabel_dead_letters_total",
            "Messages sent to dead-letter, by stage and reason.",
            ["stage", "reason"],
            registry=r,
        )
        self.confidence = BatchHistogram(
            "autolabel_prediction_confidence",
            "Top-1 probability of each prediction the labeler made.",
            CONFIDENCE_BUCKETS,
        )
        r.register(self.confidence)
        self.batch_seconds = Histogram(
            "autolabel_batch_processing_seconds",
            "Time from a fetched batch to all its outputs acknowledged and offsets committed.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batch_retries = Counter(
            "autolabel_batch_retries_total",
            "Labeler batches processed again (send failed) or whose commit failed; their"
            " outputs may appear twice on the topics, keyed by the same record id.",
            registry=r,
        )
        self.batch_records = Histogram(
            "autolabel_batch_records",
            "Messages per labeler batch.",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
            registry=r,
        )
        self.consumer_lag = Gauge(
            "autolabel_consumer_lag_records",
            "Records not yet consumed, per records-topic partition assigned to this worker.",
            ["partition"],
            registry=r,
        )
        self.broker_reachable = Gauge(
            "autolabel_broker_reachable",
            "1 while the worker's last metadata request to the brokers succeeded (NaN before"
            " the first).",
            registry=r,
        )
        self.labeler_hold = Gauge(
            "autolabel_labeler_hold_active",
            "1 while this labeler's own confidence alarm holds acceptance (until the learner"
            " answers).",
            registry=r,
        )
        # ---------------------------------------------------------------- the view in use
        self.model_version = Gauge(
            "autolabel_model_version",
            "Version of the model this worker's labeler predicts with (0: none yet).",
            registry=r,
        )
        self.snapshot_offset = Gauge(
            "autolabel_snapshot_feedback_offset",
            "Feedback absorbed by the snapshot this worker's labeler uses (its feedback offset).",
            registry=r,
        )
        self.snapshot_created = Gauge(
            "autolabel_snapshot_created_timestamp_seconds",
            "When the snapshot this worker's labeler uses was taken (NaN: none yet).",
            registry=r,
        )
        self.threshold = Gauge(
            "autolabel_policy_threshold",
            "Acceptance threshold this worker applies: global, and the lowest/highest per-class"
            " one (+Inf = nothing accepted).",
            ["scope"],
            registry=r,
        )
        self.certified_classes = Gauge(
            "autolabel_policy_certified_classes",
            "Predicted classes with a threshold of their own.",
            registry=r,
        )
        self.precision_lower_bound = RatioGauge(
            "autolabel_certified_precision_lower_bound_ratio",
            "Certified lower confidence bound on the precision of auto-accepted labels, in the"
            " view this worker applies (NaN when nothing is certified).",
            r,
        )
        self.target_precision = RatioGauge(
            "autolabel_target_precision_ratio", "The precision target the policy holds.", r
        )
        self.audit_rate = RatioGauge(
            "autolabel_audit_ratio", "Share of acceptable records sent to audit.", r
        )
        self.fallback_active = Gauge(
            "autolabel_drift_fallback_active",
            "1 while drift fallback sends everything to review (in the view this worker applies).",
            registry=r,
        )
        self.snapshots_loaded = Counter(
            "autolabel_snapshots_loaded_total",
            "Signed snapshots this worker's labeler switched to.",
            registry=r,
        )
        self.snapshots_rejected = Counter(
            "autolabel_snapshots_rejected_total",
            "Snapshots refused (unsigned, bad signature, unreadable, oversized, malformed);"
            " the previous model stays in use.",
            ["reason"],
            registry=r,
        )
        # ---------------------------------------------------------------- learner
        self.learner_active = Gauge(
            "autolabel_learner_active",
            "1 on the one worker whose learner owns the feedback partition.",
            registry=r,
        )
        self.feedback_learned = Counter(
            "autolabel_feedback_learned_total",
            "Feedback examples the model learned, by source.",
            ["source"],
            registry=r,
        )
        self.feedback_duplicates = Counter(
            "autolabel_feedback_duplicates_total",
            "Answers to a review request already answered: skipped, learned once.",
            registry=r,
        )
        self.updates_refused = Counter(
            "autolabel_model_updates_refused_total",
            "Feedback not learned because a model could not score it, or learning it would"
            " make a model non-finite (rolled back to the last snapshot).",
            registry=r,
        )
        self.prequential_accuracy = RatioGauge(
            "autolabel_prequential_accuracy_ratio",
            "Rolling accuracy of predictions scored before learning each feedback example"
            " (active learner; NaN before any).",
            r,
        )
        self.examples_learned = Gauge(
            "autolabel_model_examples_learned",
            "Examples the learner's model has learned (active learner).",
            registry=r,
        )
        self.audit_error_rate = RatioGauge(
            "autolabel_audit_error_ratio",
            "Weighted share of errors among audited auto-acceptable records (active learner;"
            " NaN before the first audit).",
            r,
        )
        self.drift_events = Counter(
            "autolabel_drift_events_total", "Drifts detected, by signal.", ["signal"], registry=r
        )
        self.model_promotions = Counter(
            "autolabel_model_promotions_total",
            "Times a fresh post-drift model replaced the current one.",
            registry=r,
        )
        self.classes_flagged = Gauge(
            "autolabel_classes_flagged",
            "Classes automation leaves out: labeled by reviewers but never predicted, or"
            " auto-labeled far less than their share (named in the log; active learner).",
            registry=r,
        )
        self.snapshots_published = Counter(
            "autolabel_snapshots_published_total", "Snapshots the learner published.", registry=r
        )
        self.snapshot_failures = Counter(
            "autolabel_snapshot_publish_failures_total",
            "Snapshots that could not be published (kept in memory; retried).",
            registry=r,
        )
        self.snapshot_bytes = Gauge(
            "autolabel_snapshot_bytes",
            "Size of the last snapshot published (NaN: none yet).",
            registry=r,
        )
        self.snapshot_seconds = Histogram(
            "autolabel_snapshot_publish_seconds",
            "Time to serialise, sign and publish a snapshot (until acknowledged).",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        # ---------------------------------------------------------------- people (learner)
        self.review_answers = Counter(
            "autolabel_review_answers_total",
            "Answers to review requests the learner learned, by the reason the request was"
            " issued for (read from its signed ticket); a re-sent answer counts once.",
            ["reason"],
            registry=r,
        )
        self.review_answer_seconds = BatchHistogram(
            "autolabel_review_answer_seconds",
            "Time from a review request's issue (its ticket) to its answer being learned.",
            ANSWER_BUCKETS,
        )
        r.register(self.review_answer_seconds)
        self.review_answers_by_reviewer = Counter(
            "autolabel_review_answers_by_reviewer_total",
            "Answers to review requests learned, by reviewer: the first"
            " AUTOLABEL_LEARNER__MAX_REVIEWERS names this process saw, 'other' for the rest.",
            ["reviewer"],
            registry=r,
        )
        self.audit_disagreements = Counter(
            "autolabel_audit_disagreements_total",
            "Audit answers whose label differs from what the model predicted for the record"
            " (scored before learning it).",
            registry=r,
        )
        self.reviewers = BoundedLabels(max_reviewers)
        # review_answer's metric children (label lookups once, not per answer)
        self._by_reason: dict[ReviewReason, Counter] = {}
        self._by_reviewer: dict[str, Counter] = {}
        for scope in ("global", "class_min", "class_max"):
            self.threshold.labels(scope=scope).set(math.inf)
        for signal in DriftSignal:
            self.drift_events.labels(signal=signal.value)
        for reason in AcceptReason:
            self.decisions.labels(outcome="accept", reason=reason.value)
        for rreason in ReviewReason:
            self.decisions.labels(outcome="review", reason=rreason.value)
        for stage in ("labeler", "learner"):
            for dreason in DeadLetterReason:
                self.dead_letters.labels(stage=stage, reason=dreason.value)
        for source in FeedbackSource:
            self.feedback_learned.labels(source=source.value)
        for review_reason in ReviewReason:
            self.review_answers.labels(reason=review_reason.value)
        self.review_answers_by_reviewer.labels(reviewer=OTHER_REVIEWER)
        for snap_reason in SNAPSHOT_REJECT_REASONS:
            self.snapshots_rejected.labels(reason=snap_reason)
        for gauge in (
            self.precision_lower_bound,
            self.target_precision,
            self.audit_rate,
            self.snapshot_created,
            self.prequential_accuracy,
            self.audit_error_rate,
            self.examples_learned,
            self.classes_flagged,
            self.broker_reachable,
            self.snapshot_bytes,
        ):
            gauge.set(math.nan)
        # ---------------------------------------------------------------- the process
        ProcessCollector(registry=r)  # process_*: CPU, memory, file descriptors, start time
        PlatformCollector(registry=r)  # python_info
        GCCollector(registry=r)  # python_gc_*
        self.build_info = Gauge(
            "autolabel_build_info",
            "Always 1; the labels say which release runs on which Python and libraries.",
            list(build_labels()),
            registry=r,
        )
        self.build_info.labels(**build_labels()).set(1)

    def count_batch(
        self,
        consumed: int,
        accepted: Tally[str],
        reviewed: Tally[str],
        dead: Tally[str],
        confidences: Sequence[float],
        seconds: float,
    ) -> None:
        """Record one labeler batch."""
        self.records_consumed.inc(consumed)
        for reason, n in accepted.items():
            self.decisions.labels(outcome="accept", reason=reason).inc(n)
        for reason, n in reviewed.items():
            self.decisions.labels(outcome="review", reason=reason).inc(n)
        for reason, n in dead.items():
            self.dead_letters.labels(stage="labeler", reason=reason).inc(n)
        self.confidence.observe_many(confidences)
        self.batch_seconds.observe(seconds)
        self.batch_records.observe(consumed)

    def view(self, view: LabelerView, created_at: float | None, target_precision: float) -> None:
        """Export the view this worker's labeler decides with."""
        cert = view.certificate
        self.model_version.set(view.model_version)
        self.snapshot_offset.set(view.feedback_offset)
        self.snapshot_created.set(math.nan if created_at is None else created_at)
        if view.mode == "fixed":
            self.threshold.labels(scope="global").set(view.fixed_threshold)
        else:
            self.threshold.labels(scope="global").set(
                math.inf if view.fallback else cert.global_threshold
            )
        finite = [t for t in cert.class_thresholds.values() if math.isfinite(t)]
        self.threshold.labels(scope="class_min").set(min(finite) if finite else math.inf)
        self.threshold.labels(scope="class_max").set(max(finite) if finite else math.inf)
        self.certified_classes.set(len(finite))
        certified = cert.certified and not view.fallback and view.mode == "certified"
        self.precision_lower_bound.set(cert.precision_lower_bound if certified else math.nan)
        self.target_precision.set(target_precision)
        self.audit_rate.set(view.audit_rate)
        self.fallback_active.set(1 if view.fallback else 0)

    def learner(self, status: ControllerStatus | None) -> None:
        """Export the learner's state; ``None`` on a standby (not the active learner)."""
        self.learner_active.set(0 if status is None else 1)
        if status is None:
            for gauge in (
                self.prequential_accuracy,
                self.audit_error_rate,
                self.examples_learned,
                self.classes_flagged,
            ):
                gauge.set(math.nan)
            return
        self.examples_learned.set(status.learned)
        self.classes_flagged.set(status.flagged_classes)
        self.prequential_accuracy.set(
            math.nan if status.rolling_accuracy is None else status.rolling_accuracy
        )
        self.audit_error_rate.set(
            math.nan if status.audit_error_rate is None else status.audit_error_rate
        )

    def count_review_answers(self, answers: Sequence[ReviewAnswer], now: float) -> None:
        """Answers to review requests learned in one poll (``now``: UNIX seconds): one
        update per series rather than a locked one per answer and metric."""
        if not answers:
            return
        reasons: dict[ReviewReason, int] = {}
        reviewers: dict[str | None, int] = {}
        waits = []
        disagreements = 0
        for reason, issued_at_ms, reviewer, disagrees in answers:
            reasons[reason] = reasons.get(reason, 0) + 1
            reviewers[reviewer] = reviewers.get(reviewer, 0) + 1
            waits.append(max(0.0, now - issued_at_ms / 1000))
            disagreements += reason is ReviewReason.AUDIT and disagrees is True
        for reason, n in reasons.items():
            by_reason = self._by_reason.get(reason)
            if by_reason is None:
                by_reason = self._by_reason[reason] = self.review_answers.labels(
                    reason=reason.value
                )
            by_reason.inc(n)
        self.review_answer_seconds.observe_many(waits)
        for reviewer, n in reviewers.items():
            name = self.reviewers.value(reviewer)
            by_reviewer = self._by_reviewer.get(name)
            if by_reviewer is None:
                by_reviewer = self._by_reviewer[name] = self.review_answers_by_reviewer.labels(
                    reviewer=name
                )
            by_reviewer.inc(n)
        if disagreements:
            self.audit_disagreements.inc(disagreements)

    def drifts(self, events: Iterable[DriftEvent]) -> None:
        for event in events:
            self.drift_events.labels(signal=event.signal.value).inc()
