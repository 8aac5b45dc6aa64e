"""The trust policy: certified thresholds, random audits and drift fallback.

One object, shared by the service (the labeler calls :meth:`TrustPolicy.decide`,
the learner calls :meth:`TrustPolicy.observe`) and ``autolabel evaluate``.

Decisions, in order:

1. no model for the record's kind yet, too few examples learned, or nothing
   certified yet → review, reason ``cold_start``;
2. drift fallback active → review, reason ``drift``;
3. confidence ≥ the certified threshold for the predicted class → accept
   (reason ``certified``), except a random share ``audit_rate`` that goes to
   review with reason ``audit`` and ``sample_weight = 1 / audit_rate``;
4. otherwise → review, reason ``uncertain``.

Evidence. Every feedback example is scored by the model *before* it learns it;
the (confidence, predicted, correct) triple goes to the
:class:`~autolabel.trust.risk.RiskController` with importance weight
``sample_weight`` (1 for records below the threshold, which are all reviewed;
``1 / audit_rate`` for audits, each standing for that many accepted records).
See :mod:`autolabel.trust.risk` for how the weighted evidence becomes a bound.

Drift. The :class:`~autolabel.trust.drift.DriftMonitor` watches three streams: the
error of audited records (an unbiased sample of the accepted region), the
*excess* error of reviewed records over what the model's own confidence
predicts (robust to the mix of reviewed records shifting with the threshold),
and the confidence of the labeler's predictions (a fall means unfamiliar
inputs). On a detected increase the policy
enters fallback: it stops auto-accepting, forgets its evidence, and a fresh
*candidate* model trains alongside the current one with its own evidence. The
policy leaves fallback as soon as either model earns a certificate on
post-drift evidence alone; the candidate replaces the current model when only
it is certified, or when both are and it scored at least as well on the
post-drift examples. Audits then run at the
raised ``drift_audit_rate`` until ``boost_audits`` audit answers came back.
"""

from __future__ import annotations

import logging
import math
import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from autolabel.core.messages import AcceptReason, FeedbackSource, ReviewReason
from autolabel.model.classifier import Prediction
from autolabel.settings import PolicySettings
from autolabel.trust.drift import DriftConfig, DriftEvent, DriftMonitor, DriftSignal
from autolabel.trust.policy import (
    Decision,
    Policy,
    PolicyStatus,
    Scored,
    ThresholdPolicy,
    review_priority,
)
from autolabel.trust.risk import Certificate, RiskConfig, RiskController, clopper_pearson_lower

log = logging.getLogger(__name__)

CONFIDENCE_CHUNK = 8
"""Confidences averaged per update of the confidence drift detector."""

AUDIT_PRIORITY = 0.5
"""Audits are evidence, not information: they sort after close calls."""


@dataclass(frozen=True, slots=True)
class TrustConfig:
    """Settings of :class:`TrustPolicy` (built from ``PolicySettings``)."""

    risk: RiskConfig = field(default_factory=RiskConfig)
    # A learning model grows more confident by itself; only a fall in confidence
    # (inputs unlike anything learned) is a reason to stop.
    # The confidence detector sees means of CONFIDENCE_CHUNK predictions: 25 of them
    # (200 predictions) warm it up.
    drift: DriftConfig = field(
        default_factory=lambda: DriftConfig(confidence_direction="decrease", confidence_warmup=25)
    )
    audit_rate: float = 0.05
    drift_audit_rate: float = 0.2
    boost_audits: int = 50
    cold_start_examples: int = 50
    seed: int = 0
    refute_window: int = 30  # recent audits tested against the certified precision
    refute_alpha: float = 0.01  # level of that test, small: it runs after every audit
    # Evidence source. 0: prequential scores (each example scored once, before it is
    # learned). > 0: that share of feedback is held out of training and re-scored by
    # the current model at every calibration (out-of-sample for the model in use,
    # immune to a learning model's drifting confidence; slower to certify).
    holdout_share: float = 0.0
    holdout_size: int = 400  # oldest held-out examples are learned when it overflows
    calibrate_every: int = 16  # feedback examples between re-certifications

    def __post_init__(self) -> None:
        for name in ("audit_rate", "drift_audit_rate"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value!r}")


@dataclass(slots=True)
class _PostDrift:
    """What the current and the candidate model scored since a drift."""

    evidence: RiskController  # the candidate's prequential evidence
    current_hits: int = 0
    candidate_hits: int = 0
    examples: int = 0
    current: Certificate = field(default_factory=Certificate)
    candidate: Certificate = field(default_factory=Certificate)


class TrustPolicy:
    """Certified auto-acceptance with audits and drift fallback.

    >>> from autolabel.model.classifier import Prediction
    >>> policy = TrustPolicy(TrustConfig(cold_start_examples=0))
    >>> p = Prediction("cat", 0.99, 0.98, (("cat", 0.99),))
    >>> policy.decide(p, learned=10).reason   # nothing certified yet
    <ReviewReason.COLD_START: 'cold_start'>
    >>> for i in range(600):  # reviewed examples, scored before learning, all right
    ...     _ = policy.observe(Scored(Prediction("cat", 0.6 + 0.4 * i / 600, 0.5, ()),
    ...                               "cat", FeedbackSource.REVIEW))
    >>> policy.calibrate([])  # the learner calls this every `calibrate_every` examples
    >>> policy.certificate.certified, policy.decide(p, learned=10).reason
    (True, <AcceptReason.CERTIFIED: 'certified'>)
    """

    def __init__(self, config: TrustConfig | None = None) -> None:
        self.config = config if config is not None else TrustConfig()
        self._prequential = self.config.holdout_share == 0.0
        self._risk_config = (
            self.config.risk
            if self._prequential
            else replace(self.config.risk, window=self.config.holdout_size, recent_window=None)
        )
        self.risk = RiskController(self._risk_config)  # prequential evidence
        self.drift = DriftMonitor(self.config.drift)
        self._certificate = Certificate()
        self._certified = False  # asked for every record: cached, not recomputed
        self.fallback = False
        self.evidence_epoch = 0  # bumped when evidence must be forgotten (drift)
        self._post_drift: _PostDrift | None = None
        self._boost_left = 0
        self._rng = random.Random(self.config.seed)
        self._holdout_rng = random.Random(self.config.seed + 1)
        self._audits = 0
        self._audit_errors = 0.0
        self._audit_weight = 0.0
        self._recent_audits: deque[bool] = deque(maxlen=self.config.refute_window)
        self._confidence_chunk: list[float] = []

    @property
    def certificate(self) -> Certificate:
        """The thresholds in force."""
        return self._certificate

    @certificate.setter
    def certificate(self, value: Certificate) -> None:
        self._certificate = value
        self._certified = value.certified

    # ---------------------------------------------------------------- labeler side

    @property
    def audit_rate(self) -> float:
        return self.config.drift_audit_rate if self._boost_left > 0 else self.config.audit_rate

    def decide(self, prediction: Prediction | None, learned: int) -> Decision:
        """Route one prediction (see the module docstring for the order of rules)."""
        if prediction is None or learned < self.config.cold_start_examples:
            return Decision(False, ReviewReason.COLD_START, math.inf, review_priority(prediction))
        if self.fallback:
            return Decision(False, ReviewReason.DRIFT, math.inf, review_priority(prediction))
        if not self._certified:
            return Decision(False, ReviewReason.COLD_START, math.inf, review_priority(prediction))
        threshold = self._certificate.threshold_for(prediction.label)
        if prediction.confidence < threshold:
            return Decision(False, ReviewReason.UNCERTAIN, threshold, review_priority(prediction))
        rate = self.audit_rate
        if self._rng.random() < rate:
            return Decision(False, ReviewReason.AUDIT, threshold, AUDIT_PRIORITY, 1.0 / rate)
        return Decision(True, AcceptReason.CERTIFIED, threshold)

    def observe_confidences(self, confidences: Iterable[float]) -> list[DriftEvent]:
        """Feed the labeler's prediction confidences to the covariate-shift detector,
        as means of ``CONFIDENCE_CHUNK`` consecutive values (the detector sees the same
        shift with a fraction of the updates on the hot path)."""
        events = []
        pending = self._confidence_chunk
        for c in confidences:
            pending.append(c)
            if len(pending) < CONFIDENCE_CHUNK:
                continue
            event = self.drift.update_confidence(math.fsum(pending) / len(pending))
            pending.clear()
            if event is not None:
                events.append(event)
                self._enter_fallback(event)
        return events

    # ---------------------------------------------------------------- learner side

    @property
    def wants_candidate(self) -> bool:
        """True while a fresh candidate model should train alongside the current one."""
        return self._post_drift is not None

    @property
    def holdout_size(self) -> int:
        return self.config.holdout_size

    @property
    def calibrate_every(self) -> int:
        return self.config.calibrate_every

    def hold_out(self) -> bool:
        """Whether the next feedback example joins the calibration holdout."""
        return self._holdout_rng.random() < self.config.holdout_share

    @property
    def audit_error_rate(self) -> float | None:
        """Weighted error rate among audited records (the accepted region), if any."""
        return self._audit_errors / self._audit_weight if self._audit_weight else None

    def observe(self, scored: Scored, candidate: Scored | None = None) -> list[DriftEvent]:
        """Take one feedback example scored by the current (and candidate) model before
        learning it: audit bookkeeping, drift detection, post-drift comparison."""
        events: list[DriftEvent] = []
        correct = scored.correct
        if scored.prediction is not None and correct is not None:
            if scored.source is FeedbackSource.AUDIT:
                self._audits += 1
                self._audit_weight += scored.sample_weight
                self._audit_errors += scored.sample_weight * (not correct)
                self._boost_left = max(self._boost_left - 1, 0)
                self._recent_audits.append(not correct)
                if (refuted := self._refuted()) is not None:
                    events.append(refuted)
                event = self.drift.update_error(not correct, audit=True)
            else:
                expected = 1.0 - scored.prediction.confidence
                event = self.drift.update_error(not correct, expected=expected)
            if event is not None:
                events.append(event)
        for event in events:
            self._enter_fallback(event)
        if self._prequential:
            _observe(self.risk, scored)
        if self._post_drift is not None:
            post = self._post_drift
            post.examples += 1
            post.current_hits += bool(correct)
            post.candidate_hits += bool(candidate is not None and candidate.correct)
            if self._prequential and candidate is not None:
                _observe(post.evidence, candidate)
        return events

    def calibrate(
        self, current: Sequence[Scored], candidate: Sequence[Scored] | None = None
    ) -> None:
        """Re-certify from the holdout, scored now by the current (and candidate) model.

        The holdout holds reviewed examples no model has learned, so these scores
        are out-of-sample for the model that will label the next records. With
        prequential evidence (``holdout_share == 0``) the holdout is empty and the
        certificates come from the evidence gathered by :meth:`observe`.
        """
        post = self._post_drift
        if self._prequential:
            certificate = self.risk.certificate()
            challenger = post.evidence.certificate() if post else Certificate()
        else:
            certificate = self._certify(current)
            challenger = self._certify(candidate) if candidate else Certificate()
        if post is not None:
            post.current = certificate
            post.candidate = challenger
            if self.fallback and (post.current.certified or post.candidate.certified):
                self.fallback = False
                self._boost_left = self.config.boost_audits
                log.warning(
                    "drift fallback over after %d post-drift examples: re-certified"
                    " (current model: %s, candidate: %s)",
                    post.examples,
                    post.current.certified,
                    post.candidate.certified,
                )
        self.certificate = Certificate() if self.fallback else certificate

    def promote_candidate(self) -> bool:
        """Whether the learner should now replace the current model by the candidate.

        Asked after every example; true at most once per drift, when fallback has
        ended and the candidate is the better certified model.
        """
        post = self._post_drift
        if post is None or self.fallback:
            return False
        self._post_drift = None
        better = post.candidate_hits >= post.current_hits
        if post.candidate.certified and (not post.current.certified or better):
            self.certificate = post.candidate
            self.risk = post.evidence
            self.drift.reset()  # the new model's confidences are a new baseline
            return True
        return False

    def _certify(self, scored: Sequence[Scored]) -> Certificate:
        risk = RiskController(self._risk_config)
        for item in scored:
            _observe(risk, item)
        return risk.certificate(fresh=True)

    def status(self) -> PolicyStatus:
        cert = self.certificate
        finite = [t for t in cert.class_thresholds.values() if math.isfinite(t)]
        return PolicyStatus(
            global_threshold=cert.global_threshold,
            class_threshold_min=min(finite) if finite else None,
            class_threshold_max=max(finite) if finite else None,
            certified_classes=len(finite),
            precision_lower_bound=cert.precision_lower_bound if cert.certified else None,
            audit_rate=self.audit_rate,
            audit_error_rate=self.audit_error_rate,
            fallback=self.fallback,
        )

    def _refuted(self) -> DriftEvent | None:
        """Recent audits contradict the certificate: their error is surely above target.

        Audits are a uniform sample of what the policy accepts, so a Clopper-Pearson
        *lower* bound on their error rate above ``1 - target_precision`` refutes the
        certified precision. This reacts to a concept drift within a few audits, long
        before a change detector has the evidence it needs.
        """
        errors, n = sum(self._recent_audits), len(self._recent_audits)
        epsilon = 1.0 - self.config.risk.target_precision
        if errors == 0 or clopper_pearson_lower(errors, n, self.config.refute_alpha) <= epsilon:
            return None
        self._recent_audits.clear()
        rate = errors / n
        return DriftEvent(
            DriftSignal.AUDIT_ERROR,
            self._audits,
            epsilon,
            rate,
            f"{errors} of the last {n} audited labels were wrong ({rate:.0%}),"
            f" refuting the certified precision of {self.config.risk.target_precision:.0%}",
        )

    def _enter_fallback(self, event: DriftEvent) -> None:
        log.warning("drift detected on %s: %s; auto-accepting stops", event.signal, event.detail)
        if self.fallback:
            return
        self.fallback = True
        self.evidence_epoch += 1  # the learner drops its pre-drift holdout
        self.risk.reset()
        self.drift.reset()
        self._recent_audits.clear()
        self.certificate = Certificate()
        self._post_drift = _PostDrift(RiskController(self._risk_config))


def _observe(risk: RiskController, scored: Scored) -> None:
    """Evidence for the risk controller; audits stand for ``sample_weight`` records."""
    if scored.prediction is None or scored.correct is None:
        return
    weight = scored.sample_weight if scored.source is FeedbackSource.AUDIT else 1.0
    risk.observe(scored.prediction.confidence, scored.prediction.label, scored.correct, weight)


def build_policy(settings: PolicySettings) -> Policy:
    """The policy the settings ask for: certified (default) or a fixed threshold."""
    if settings.mode == "fixed":
        return ThresholdPolicy(settings.confidence_threshold, settings.cold_start_examples)
    return TrustPolicy(
        TrustConfig(
            risk=RiskConfig(
                target_precision=settings.target_precision,
                delta=settings.delta,
                window=settings.evidence_window,
                recent_window=settings.recent_window,
                mode="both" if settings.per_class else "global",
                min_evidence=settings.min_evidence,
            ),
            holdout_share=settings.holdout_share,
            holdout_size=settings.holdout_size,
            audit_rate=settings.audit_rate,
            drift_audit_rate=settings.drift_audit_rate,
            boost_audits=settings.boost_audits,
            cold_start_examples=settings.cold_start_examples,
            seed=settings.seed,
        )
    )
