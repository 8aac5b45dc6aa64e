"""The learner's core: the single writer of the model and of all trust state.

One :class:`TrustController` owns, and alone changes, everything that decides what may
be auto-accepted: the model(s), the evidence and certificate, the drift detectors, the
holdout, the post-drift candidate, the evidence epoch, the audit tallies, the answered
review requests, the counters and the offsets of the feedback and signals absorbed.
Labelers never touch it: they decide from a :class:`~autolabel.trust.policy.LabelerView`
it publishes (:meth:`TrustController.view`), and what only they see (the confidence of
unlabeled traffic) reaches it as :class:`~autolabel.core.messages.ConfidenceSignal`
messages (:meth:`TrustController.observe_signal`). The worker pickles the whole
controller into a signed snapshot, and a restarted or new learner resumes from it.

For each answer (:meth:`TrustController.absorb`): an answer to a review request already
answered is skipped; otherwise the example is scored by the current (and candidate)
model *before* learning it (prequential: honest evidence), the score feeds the audit
tallies, the drift detectors and the risk controller, then the model learns it, unless
the model cannot score it with finite numbers or learning it would make the model
non-finite (:class:`ModelUpdateRefused`).

Trust, in short (see :mod:`autolabel.trust.risk` for the certificate):

- audits of accepted records are the unbiased evidence for the accepted region, each
  standing for ``1 / audit_rate`` records; the last ``refute_window`` audits *refute*
  the certificate when their lower error bound exceeds ``1 - target``;
- ADWIN detectors watch the audit error, the excess error of reviewed records over the
  model's own estimate, and the confidence of unlabeled traffic (from the labelers);
- on drift the controller enters fallback: acceptance stops, the evidence is forgotten
  (a new epoch), a fresh candidate model learns alongside, and fallback ends when either
  model is certified on post-drift evidence alone; the candidate replaces the current
  model when only it is certified or it scored at least as well since the drift. Audits
  then run at ``drift_audit_rate`` until ``boost_audits`` audit answers came back.

>>> from autolabel.core.messages import Feedback, FeedbackSource, Record
>>> from autolabel.core.requests import Admitted
>>> from autolabel.settings import ModelSettings, PolicySettings
>>> ctl = TrustController(ControllerConfig(ModelSettings(), PolicySettings(mode="fixed")))
>>> def answer(i, x, label):
...     fb = Feedback(id=str(i), record=Record(id=str(i), features={"x": x}), label=label,
...                   source=FeedbackSource.REVIEW)
...     return Admitted(fb, FeedbackSource.REVIEW, 1.0, None, None)
>>> ctl.absorb(answer(0, 1.0, "a"), offset=0).scored.correct is None  # no model yet
True
>>> ctl.absorb(answer(1, 1.0, "a"), offset=1).scored.correct, ctl.feedback_offset
(True, 2)
>>> ctl.view().learned
2
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from autolabel.core.codec import Rejected
from autolabel.core.messages import (
    ConfidenceSignal,
    DeadLetterReason,
    Feedback,
    FeedbackSource,
)
from autolabel.core.requests import Admitted
from autolabel.model.classifier import NonFiniteOutput, OnlineClassifier, Prediction
from autolabel.settings import ModelSettings, PolicySettings
from autolabel.trust.drift import DriftConfig, DriftEvent, DriftMonitor, DriftSignal
from autolabel.trust.policy import LabelerView
from autolabel.trust.risk import Certificate, RiskConfig, RiskController, clopper_pearson_lower

log = logging.getLogger(__name__)

CONFIDENCE_CHUNK = 8
"""Prediction confidences averaged per value the confidence detectors see."""


class ModelUpdateRefused(Exception):
    """Learning an example made a model non-finite: the controller must be restored from
    its last checkpoint (the example is then skipped)."""


@dataclass(frozen=True, slots=True)
class TrustConfig:
    """How the controller certifies, audits and falls back (from ``PolicySettings``)."""

    mode: Literal["certified", "fixed"] = "certified"
    fixed_threshold: float = 0.9
    risk: RiskConfig = field(default_factory=RiskConfig)
    # A learning model grows more confident by itself; only a fall in confidence
    # (inputs unlike anything learned) is a reason to stop. The confidence detector sees
    # means of CONFIDENCE_CHUNK predictions: 25 of them (200 predictions) warm it up.
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
    # 0: certify on prequential scores. > 0: that share of feedback is held out of
    # training and re-scored by the current model at every calibration.
    holdout_share: float = 0.0
    holdout_size: int = 400  # oldest held-out examples are learned when it overflows
    calibrate_every: int = 16  # examples between re-certifications

    def __post_init__(self) -> None:
        for name in ("audit_rate", "drift_audit_rate"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value!r}")

    @classmethod
    def from_settings(cls, settings: PolicySettings) -> TrustConfig:
        return cls(
            mode=settings.mode,
            fixed_threshold=settings.confidence_threshold,
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


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    """Everything a :class:`TrustController` is built from."""

    model: ModelSettings
    policy: PolicySettings | TrustConfig
    top_k: int = 3
    accuracy_window: int = 500
    dedupe_window: int = 100_000

    @property
    def trust(self) -> TrustConfig:
        p = self.policy
        return p if isinstance(p, TrustConfig) else TrustConfig.from_settings(p)


@dataclass(frozen=True, slots=True)
class Scored:
    """One answer scored by a model before learning it (prequential)."""

    prediction: Prediction | None
    label: str
    source: FeedbackSource
    weight: float = 1.0

    @property
    def correct(self) -> bool | None:
        return None if self.prediction is None else self.prediction.label == self.label


@dataclass(frozen=True, slots=True)
class Outcome:
    """What absorbing one feedback message did."""

    kind: Literal["learned", "duplicate", "rejected"]
    scored: Scored | None = None
    drift_events: tuple[DriftEvent, ...] = ()
    promoted: bool = False
    tightened: bool = False  # acceptance stopped: publish at once
    rejection: Rejected | None = None  # why it was not learned: it goes to dead-letter

    @property
    def correct(self) -> bool | None:
        return None if self.scored is None else self.scored.correct


@dataclass(slots=True)
class _PostDrift:
    """What the current and the candidate model scored since a drift."""

    evidence: RiskController  # the candidate's prequential evidence
    current_hits: int = 0
    candidate_hits: int = 0
    examples: int = 0
    current: Certificate = field(default_factory=Certificate)
    candidate: Certificate = field(default_factory=Certificate)


@dataclass(frozen=True, slots=True)
class ControllerStatus:
    """What ops should see of the controller (exported as metrics by the active learner)."""

    learned: int
    model_version: int
    epoch: int
    feedback_offset: int
    certificate: Certificate
    fallback: bool
    audit_rate: float
    audit_error_rate: float | None
    rolling_accuracy: float | None
    learned_by_source: dict[str, int]
    duplicates: int
    rejected: dict[str, int]
    drift_events: dict[str, int]
    promotions: int


class TrustController:
    """Single writer of the model(s) and all trust state; see the module docstring."""

    def __init__(self, config: ControllerConfig) -> None:
        self._model_settings = config.model
        self._top_k = config.top_k
        self.config = config.trust
        cfg = self.config
        self._certified_mode = cfg.mode == "certified"
        self._prequential = cfg.holdout_share == 0.0
        self._risk_config = (
            cfg.risk
            if self._prequential
            else replace(cfg.risk, window=cfg.holdout_size, recent_window=None)
        )
        # models
        self.classifier = OnlineClassifier(config.model, config.top_k)
        self.candidate: OnlineClassifier | None = None
        self.holdout: deque[Feedback] = deque()
        # evidence and certificate
        self.risk = RiskController(self._risk_config)
        self.drift = DriftMonitor(cfg.drift)
        self.certificate = Certificate()
        self.fallback = False
        self.certified_once = False
        self.epoch = 0  # bumped whenever evidence is forgotten (drift)
        self._post_drift: _PostDrift | None = None
        self._boost_left = 0
        self._holdout_rng = random.Random(cfg.seed + 1)
        self._since_calibration = 0
        self._confidence_chunk: list[float] = []
        # audits
        self._audits = 0
        self._audit_errors = 0.0
        self._audit_weight = 0.0
        self._recent_audits: deque[bool] = deque(maxlen=cfg.refute_window)
        # prequential accuracy
        self._recent: deque[bool] = deque(maxlen=config.accuracy_window)
        self._hits = 0
        # exactly once
        self._answered: OrderedDict[bytes, None] = OrderedDict()
        self._dedupe_window = config.dedupe_window
        self.feedback_offset = 0  # next feedback offset to absorb
        self.signals_offset: int | None = None  # next signals offset to read
        # counters (kept in snapshots, so they count each message once)
        self.learned_by_source: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.duplicates = 0
        self.promotions = 0
        self.drift_counts: Counter[str] = Counter()

    # ------------------------------------------------------------------ what labelers see

    @property
    def audit_rate(self) -> float:
        cfg = self.config
        return cfg.drift_audit_rate if self._boost_left > 0 else cfg.audit_rate

    def view(self) -> LabelerView:
        """The immutable picture labelers decide from (it references the current model:
        publish it through a snapshot, or never learn while a labeler uses it)."""
        cfg = self.config
        learned = self.classifier.learned()
        return LabelerView(
            model=self.classifier if learned else None,
            model_version=self.classifier.version,
            learned=learned,
            epoch=self.epoch,
            mode=cfg.mode,
            certificate=self.certificate,
            fixed_threshold=cfg.fixed_threshold,
            fallback=self.fallback,
            certified_once=self.certified_once,
            audit_rate=self.audit_rate,
            cold_start_examples=cfg.cold_start_examples,
            feedback_offset=self.feedback_offset,
        )

    # ------------------------------------------------------------------ what the learner feeds

    def absorb(self, item: Admitted | Rejected, offset: int) -> Outcome:
        """Take the feedback message at ``offset``: learn it, skip it, or count it rejected.

        Raises :class:`ModelUpdateRefused` when learning it made a model non-finite; the
        controller is then unusable and must be restored from a checkpoint.
        """
        self.feedback_offset = offset + 1
        if isinstance(item, Rejected):
            self.rejected[item.reason.value] += 1
            return Outcome("rejected", rejection=item)
        key = item.request_key
        if key is not None and key in self._answered:
            self.duplicates += 1
            return Outcome("duplicate")
        outcome = self._learn(item)
        if outcome.kind == "learned" and key is not None:
            self._remember(key)
        return outcome

    def observe_signal(self, signal: ConfidenceSignal, offset: int | None = None) -> Outcome:
        """Labelers' confidences feed the covariate-shift detector; a labeler's alarm in
        the current epoch stops acceptance for every labeler."""
        if offset is not None:
            self.signals_offset = offset + 1
        if not self._certified_mode:
            return Outcome("learned")
        events: list[DriftEvent] = []
        if signal.epoch == self.epoch:  # confidences of the model and evidence now in force
            for mean in signal.chunk_means:
                if not math.isfinite(mean):
                    continue
                event = self.drift.update_confidence(mean)
                if event is not None:
                    events.append(event)
        if signal.alarm and signal.epoch == self.epoch and not events:
            events.append(
                DriftEvent(
                    DriftSignal.CONFIDENCE,
                    self.drift.seen(DriftSignal.CONFIDENCE),
                    math.nan,
                    math.nan,
                    f"labeler {signal.worker} saw the confidence of its traffic fall",
                )
            )
        tightened = False
        for event in events:
            tightened |= self._enter_fallback(event)
        return Outcome("learned", None, tuple(events), False, tightened)

    # ------------------------------------------------------------------ learning

    def _learn(self, item: Admitted) -> Outcome:
        feedback = item.feedback
        try:
            scored = self._score(self.classifier, feedback, item)
            challenger = self._score(self.candidate, feedback, item) if self.candidate else None
        except ValueError as exc:  # the model cannot score it: it would not learn it sanely
            reason = DeadLetterReason.MODEL_UPDATE_REFUSED
            self.rejected[reason.value] += 1
            error = f"the model cannot score this record ({exc}); not learned"
            return Outcome("rejected", rejection=Rejected(reason, error, feedback.id))
        correct = scored.correct
        if correct is not None:
            if len(self._recent) == self._recent.maxlen:
                self._hits -= self._recent[0]
            self._recent.append(correct)
            self._hits += correct
        certified_before, fallback_before = self.certificate.certified, self.fallback
        events = self._observe(scored, challenger) if self._certified_mode else []
        if self._certified_mode and self._hold_out():
            self.holdout.append(feedback)
            if len(self.holdout) > self.config.holdout_size:
                self._teach(self.holdout.popleft())
        else:
            self._teach(feedback)
        self.learned_by_source[item.source.value] += 1
        if self._certified_mode:
            self._since_calibration += 1
            if self._since_calibration >= self.config.calibrate_every:
                self.calibrate()
        promoted = self._settle_candidate()
        tightened = (self.fallback and not fallback_before) or (
            certified_before and not self.certificate.certified
        )
        return Outcome("learned", scored, tuple(events), promoted, tightened)

    def _score(self, model: OnlineClassifier | None, feedback: Feedback, item: Admitted) -> Scored:
        prediction = model.predict_one(feedback.record) if model else None
        return Scored(prediction, feedback.label, item.source, item.weight)

    def _teach(self, feedback: Feedback) -> None:
        for model in (self.classifier, self.candidate):
            if model is None:
                continue
            try:
                model.learn(feedback.record, feedback.label)
            except NonFiniteOutput as exc:
                raise ModelUpdateRefused(
                    f"learning {feedback.id!r} made the model non-finite ({exc})"
                ) from exc

    def _remember(self, key: bytes) -> None:
        if self._dedupe_window <= 0:
            return
        self._answered[key] = None
        if len(self._answered) > self._dedupe_window:
            self._answered.popitem(last=False)

    def _hold_out(self) -> bool:
        share = self.config.holdout_share
        return share > 0 and self._holdout_rng.random() < share

    # ------------------------------------------------------------------ evidence and drift

    def _observe(self, scored: Scored, candidate: Scored | None) -> list[DriftEvent]:
        events: list[DriftEvent] = []
        correct = scored.correct
        if scored.prediction is not None and correct is not None:
            if scored.source is FeedbackSource.AUDIT:
                self._audits += 1
                self._audit_weight += scored.weight
                self._audit_errors += scored.weight * (not correct)
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

    def calibrate(self) -> None:
        """Re-certify: from prequential evidence, or from the holdout re-scored now."""
        self._since_calibration = 0
        post = self._post_drift
        if self._prequential:
            certificate = self.risk.certificate()
            challenger = post.evidence.certificate() if post else Certificate()
        else:
            certificate = self._certify_holdout(self.classifier)
            challenger = self._certify_holdout(self.candidate) if self.candidate else Certificate()
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
        self.certified_once |= self.certificate.certified

    def _certify_holdout(self, model: OnlineClassifier | None) -> Certificate:
        risk = RiskController(self._risk_config)
        for feedback in self.holdout:
            prediction = model.predict_one(feedback.record) if model else None
            _observe(risk, Scored(prediction, feedback.label, FeedbackSource.REVIEW))
        return risk.certificate(fresh=True)

    def _settle_candidate(self) -> bool:
        post = self._post_drift
        if self.candidate is None or post is None or self.fallback:
            return False
        self._post_drift = None
        better = post.candidate_hits >= post.current_hits
        if post.candidate.certified and (not post.current.certified or better):
            self.candidate.version = self.classifier.version + 1
            self.classifier, self.candidate = self.candidate, None
            self.certificate = post.candidate
            self.risk = post.evidence
            self.drift.reset()  # the new model's confidences are a new baseline
            self.epoch += 1  # and its evidence is new: signals about the old one are stale
            self.promotions += 1
            return True
        self.candidate = None
        return False

    def _refuted(self) -> DriftEvent | None:
        """Recent audits contradict the certificate: their error is surely above target."""
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

    def _enter_fallback(self, event: DriftEvent) -> bool:
        """Stop accepting; True when this started a fallback (not already in one)."""
        self.drift_counts[event.signal.value] += 1
        log.warning("drift detected on %s: %s; auto-accepting stops", event.signal, event.detail)
        if self.fallback:
            return False
        self.fallback = True
        self.epoch += 1
        self.holdout.clear()  # pre-drift examples are stale evidence
        self.risk.reset()
        self.drift.reset()
        self._recent_audits.clear()
        self.certificate = Certificate()
        self._post_drift = _PostDrift(RiskController(self._risk_config))
        self.candidate = OnlineClassifier(self._model_settings, self._top_k)
        return True

    # ------------------------------------------------------------------ reporting

    @property
    def audit_error_rate(self) -> float | None:
        """Weighted error rate among audited records (the accepted region), if any."""
        return self._audit_errors / self._audit_weight if self._audit_weight else None

    @property
    def rolling_accuracy(self) -> float | None:
        """Prequential accuracy over the last ``accuracy_window`` scored examples."""
        return self._hits / len(self._recent) if self._recent else None

    def status(self) -> ControllerStatus:
        return ControllerStatus(
            learned=self.classifier.learned(),
            model_version=self.classifier.version,
            epoch=self.epoch,
            feedback_offset=self.feedback_offset,
            certificate=self.certificate,
            fallback=self.fallback,
            audit_rate=self.audit_rate,
            audit_error_rate=self.audit_error_rate,
            rolling_accuracy=self.rolling_accuracy,
            learned_by_source=dict(self.learned_by_source),
            duplicates=self.duplicates,
            rejected=dict(self.rejected),
            drift_events=dict(self.drift_counts),
            promotions=self.promotions,
        )


def chunk_means(confidences: Sequence[float], pending: list[float]) -> list[float]:
    """Means of consecutive ``CONFIDENCE_CHUNK`` confidences; the remainder stays in
    ``pending`` for the next call. Non-finite values are skipped.

    >>> pending: list[float] = []
    >>> chunk_means([1.0] * 8 + [0.5] * 3, pending), pending
    ([1.0], [0.5, 0.5, 0.5])
    """
    out = []
    for c in confidences:
        if not math.isfinite(c):
            continue
        pending.append(c)
        if len(pending) == CONFIDENCE_CHUNK:
            out.append(math.fsum(pending) / CONFIDENCE_CHUNK)
            pending.clear()
    return out


def _observe(risk: RiskController, scored: Scored) -> None:
    """Evidence for the risk controller; audits stand for ``weight`` records."""
    if scored.prediction is None or scored.correct is None:
        return
    weight = scored.weight if scored.source is FeedbackSource.AUDIT else 1.0
    risk.observe(scored.prediction.confidence, scored.prediction.label, scored.correct, weight)
