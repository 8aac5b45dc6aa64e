"""The learner's core: the single writer of the models and of all trust state.

One :class:`TrustController` owns, and alone changes, everything that decides what may
be auto-accepted: the candidate models, their evidence and certificates, the error
budget's spending schedule, the sequential monitors, the holdout, the audit tallies,
the answered review requests, the record clock, the counters and the offsets of the
feedback and signals absorbed. Labelers never touch it: they decide from a
:class:`~autolabel.trust.policy.LabelerView` it publishes (:meth:`TrustController.view`),
and what only they see (records routed, the confidence of unlabeled traffic, their own
alarms) reaches it as :class:`~autolabel.core.messages.ConfidenceSignal` messages
(:meth:`TrustController.observe_signal`). The worker pickles the whole controller into a
signed snapshot, and a restarted or new learner resumes from it.

**Candidates, chosen by evidence.** Every candidate model (softmax, a Hoeffding adaptive
tree and naive Bayes for tabular records by default; ``AUTOLABEL_MODEL__*``) learns the
same answers and is scored on each *before* learning it; each keeps its own evidence.
Only the chosen one labels. At each scheduled test every candidate is certified at
``alpha / candidates`` (Bonferroni: the choice is paid for), and the one with the most
estimated automation labels next (a challenger must beat it by ``switch_margin``).
Under a backlog the learner may thin the slow candidates (they skip answers); the
chosen one learns every answer.

**Scored before learning, one answer or a chunk at a time.** An answer's score (the
evidence, the monitors' input) always comes from a model that has not learned it. By
default that is the model just before the answer. Under a backlog the learner may
instead :meth:`TrustController.prescore` a chunk of up to :data:`PRESCORE_CHUNK`
answers with the model as it stood before the chunk, in one matrix product (models with
a batch predictor that have learned at least :data:`PRESCORE_MIN_LEARNED` examples),
then absorb them one by one: still test-then-train (no answer is scored by a model that
learned it), by a model at most ``PRESCORE_CHUNK - 1`` answers older, so from a model
that learned ``PRESCORE_MIN_LEARNED`` examples at most 1/16 more. A prescored prediction
is used only by the very model object that made it: a candidate created within the chunk
(a fallback's fresh copies) scores one answer at a time, and a controller restored after
a refused update starts without any. Learning is unchanged: every model learns the same
answers in the same order either way.

**A guarantee over the whole stream.** Certification tests run on a schedule that
spends ``delta`` over every test of every epoch (:mod:`autolabel.trust.spending`), so
the probability that any certificate ever issued was invalid for its evidence is at
most ``delta``. Evidence is a sliding window of examples that also ages by records
(``max_age_records``). Between tests the certificate stays, unless monitoring withdraws
it; a test that certifies nothing keeps the one in force.

**Monitoring, with no warm-up** (:mod:`autolabel.trust.sequential`):

- a betting test on the audits of the accepted region refutes the certificate as soon
  as the audits say the accepted labels are wrong more than ``1 - target`` of the time;
  the same bets per predicted class, as e-detectors that carry no debt from a class's
  past right audits, refute it when one class turns wrong;
- an e-CUSUM on the excess error of reviewed records (errors beyond what the model's own
  confidence predicts) sees a jump in a few dozen reviews;
- an e-CUSUM on the labelers' confidence sees inputs unlike anything learned: that
  raises audits (a covariate shift alone is no reason to stop), and a labeler's own
  alarm (a large fall) is answered with a new trust epoch and raised audits.

**One recovery path.** Whatever stops acceptance (a refutation, an excess-error alarm,
a drift of any kind) enters fallback: reason ``drift`` for every record, a new evidence
epoch (with its own share of ``delta``), every candidate's evidence forgotten, a
fresh, untrained copy of each candidate family trained alongside, and a frozen copy of
the model in use whose labels are renamed to what reviewers now call them
(:mod:`autolabel.model.remap`: after two classes swap, or a binary label flips, it is
right again within a few dozen answers; its evidence restarts whenever it renames a
label, and its tests may start from ``remap_evidence_share`` of ``min_evidence``, since a
fixed, mature predictor has no young model's overconfident errors at its top). The
first scheduled test that certifies any candidate on post-change evidence ends the
fallback with that candidate; per family, the copy that scored better since the change
is kept, and the frozen copy only if it labels.

**Audits adapt**: ``drift_audit_rate`` for ``boost_audits`` audits after any new
certificate, switch, fallback end or confidence shift; twice the base rate while the
certified bound is within ``close_margin`` of the target, half of it (at least
``min_audit_rate``) when it is more than ``far_margin`` above.

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

import copy
import logging
import math
import pickle
import random
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, NamedTuple

from autolabel.core.codec import Rejected
from autolabel.core.messages import (
    ConfidenceSignal,
    DeadLetterReason,
    Feedback,
    FeedbackSource,
    RecordKind,
)
from autolabel.core.requests import Admitted
from autolabel.core.tuples import new_tuple
from autolabel.model.classifier import Classifier, NonFiniteOutput, OnlineClassifier, Prediction
from autolabel.model.remap import RemappedClassifier
from autolabel.settings import ModelSettings, PolicySettings
from autolabel.trust.answered import AnsweredRequests
from autolabel.trust.classes import ClassView
from autolabel.trust.drift import DriftEvent, DriftSignal
from autolabel.trust.policy import LabelerView
from autolabel.trust.risk import Certificate, RiskConfig, RiskController
from autolabel.trust.sequential import BettingDetector, BettingTest, ChangeDetector
from autolabel.trust.spending import SpendingSchedule

log = logging.getLogger(__name__)

CONFIDENCE_CHUNK = 8
"""Prediction confidences averaged per value the confidence detectors see."""

MAX_CLASS_TESTS = 50
"""Per-class refutation tests kept (the most frequent predicted classes)."""

PRESCORE_CHUNK = 64
"""The most answers :meth:`TrustController.prescore` scores with one model state."""

PRESCORE_MIN_LEARNED = 16 * PRESCORE_CHUNK
"""Examples a model must have learned before it scores answers a chunk at a time: a
chunk then moves it by at most 1/16 of what it learned (a young model scores one at a
time, as it changes fastest)."""


class ModelUpdateRefused(Exception):
    """Learning an example made a model non-finite: the controller must be restored from
    its last checkpoint (the example is then skipped)."""


@dataclass(frozen=True, slots=True)
class TrustConfig:
    """How the controller certifies, monitors, audits and recovers (from ``PolicySettings``)."""

    mode: Literal["certified", "fixed"] = "certified"
    guarantee: Literal["stream", "per_test"] = "stream"
    fixed_threshold: float = 0.9
    risk: RiskConfig = field(default_factory=RiskConfig)
    audit_rate: float = 0.05
    drift_audit_rate: float = 0.2
    min_audit_rate: float = 0.02
    boost_audits: int = 50
    close_margin: float = 0.01  # bound within this of the target: audit twice as much
    far_margin: float = 0.03  # bound more than this above the target: audit half as much
    cold_start_examples: int = 50
    seed: int = 0
    # the error budget's schedule (see trust/spending.py)
    first_test: int = 40
    test_growth: float = 1.5
    min_test_gap: int = 16
    max_age_records: int = 10_000  # evidence older than this many records is forgotten
    switch_margin: float = 0.02  # a challenger must certify this much more automation
    # recovery: a frozen copy of the model in use, its labels renamed (model/remap.py),
    # tested from this share of ``min_evidence``; 0 = no such candidate
    remap_evidence_share: float = 1.0
    remap_max_bytes: int = 8 * 1024 * 1024  # a larger model (ARF) gets no frozen copy
    # monitoring
    refute_alpha: float = 0.05  # audits of the accepted region (betting test)
    class_refute_factor: float = 2.0  # per predicted class: refuted beyond this x (1 - target)
    excess_margin: float = 0.1  # reviewed records' excess error rising by 2x this
    excess_alpha: float = 1e-4
    shift_margin: float = 0.05  # labelers' confidence falling by this much: more audits
    shift_alpha: float = 1e-5
    audit_change_margin: float = 0.03  # audit errors rising this much over their own level
    audit_change_alpha: float = 1e-3
    # evidence source: 0 = prequential scores; > 0 = a held-out share re-scored
    holdout_share: float = 0.0
    holdout_size: int = 400

    def __post_init__(self) -> None:
        for name in ("audit_rate", "drift_audit_rate", "min_audit_rate"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value!r}")

    @property
    def epsilon(self) -> float:
        return 1.0 - self.risk.target_precision

    @classmethod
    def from_settings(cls, settings: PolicySettings) -> TrustConfig:
        return cls(
            mode=settings.mode,
            guarantee=settings.guarantee,
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


class Scored(NamedTuple):
    """One answer scored by a model before learning it (prequential). Scored answers and
    outcomes are named tuples: one or more of each per answer, built for a fraction of a
    frozen dataclass's cost."""

    prediction: Prediction | None
    label: str
    source: FeedbackSource
    weight: float = 1.0

    @property
    def correct(self) -> bool | None:
        return None if self.prediction is None else self.prediction.label == self.label


class Outcome(NamedTuple):
    """What absorbing one feedback message (or one signal) did."""

    kind: Literal["learned", "duplicate", "rejected"]
    scored: Scored | None = None
    drift_events: tuple[DriftEvent, ...] = ()
    promoted: bool = False  # the chosen model changed
    tightened: bool = False  # acceptance stopped: publish at once
    rejection: Rejected | None = None  # why it was not learned: it goes to dead-letter
    thinned: bool = False  # the candidates that do not label skipped it (a backlog)

    @property
    def correct(self) -> bool | None:
        return None if self.scored is None else self.scored.correct


class Prescored:
    """Predictions of a chunk of answers made before any of them was learned, by model
    (:meth:`TrustController.prescore`); empty when nothing was prescored."""

    __slots__ = ("_by_model",)

    def __init__(self) -> None:
        # id(model) -> (the model itself, so an id is never reused; offset -> prediction)
        self._by_model: dict[int, tuple[Classifier, dict[int, Prediction]]] = {}

    def add(self, model: Classifier, predictions: dict[int, Prediction]) -> None:
        self._by_model[id(model)] = (model, predictions)

    def get(self, model: Classifier, offset: int) -> Prediction | None:
        """``model``'s prediction of the answer at ``offset``; None if it made none."""
        entry = self._by_model.get(id(model))
        if entry is None or entry[0] is not model:
            return None
        return entry[1].get(offset)

    def __len__(self) -> int:
        return len(self._by_model)


@dataclass(slots=True)
class Candidate:
    """One candidate model, its evidence and what it scored in this epoch."""

    settings: ModelSettings
    model: Classifier
    evidence: RiskController
    generation: int  # the evidence epoch it was created in
    certificate: Certificate = field(default_factory=Certificate)
    scored: int = 0  # answers scored in this epoch
    hits: int = 0  # of which right
    thinned: int = 0  # answers skipped under a backlog (lifetime)

    @property
    def name(self) -> str:
        if isinstance(self.model, RemappedClassifier):
            return f"{self.settings.name} remapped"
        return self.settings.name

    @property
    def accuracy(self) -> float:
        return self.hits / self.scored if self.scored else 0.0


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
    chosen: str = ""
    candidates: int = 1
    delta_spent: float = 0.0
    flagged_classes: int = 0


class TrustController:
    """Single writer of the model(s) and all trust state; see the module docstring."""

    def __init__(self, config: ControllerConfig) -> None:
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
        families = config.model.candidates()
        self._families = families if self._certified_mode else families[:1]
        self.candidates: list[Candidate] = [self._new_candidate(f, 1) for f in self._families]
        self.chosen = 0  # index into candidates
        self.holdout: deque[Feedback] = deque()
        # certification
        per_test = cfg.guarantee == "per_test"  # re-test every 16 answers at full delta
        self.schedule = SpendingSchedule(
            delta=cfg.risk.delta,
            first=16 if per_test else cfg.first_test,
            growth=1.0 if per_test else cfg.test_growth,
            min_gap=16 if per_test else cfg.min_test_gap,
            per_test=per_test,
        )
        self.epoch_examples = 0  # answers scored in this evidence epoch
        self.certificate = Certificate()
        self.certified_once = False
        self.fallback = False
        self.trust_version = 0  # bumped whenever what labelers decide with changes
        self.epoch = 0  # trust epoch of the view: a labeler's alarm is answered by a new one
        self._holdout_rng = random.Random(cfg.seed + 1)
        # monitoring
        self._refute = BettingTest(bound=cfg.epsilon, alpha=cfg.refute_alpha / 3)
        self._class_refute: dict[str, BettingTest] = {}  # BettingDetector
        # audit errors rising over their own level (a change, even below the target's bound)
        self._audit_change = ChangeDetector(
            margin=cfg.audit_change_margin, alpha=cfg.audit_change_alpha, min_reference=20
        )
        # audits proving the accepted error well below the bound: audits may then ease off
        self._confirm = BettingTest(bound=1 - cfg.epsilon / 2, alpha=0.05)
        self._excess = ChangeDetector(
            margin=cfg.excess_margin, alpha=cfg.excess_alpha, min_reference=30
        )
        self._shift = ChangeDetector(
            margin=cfg.shift_margin, alpha=cfg.shift_alpha, min_reference=25
        )
        self._boost_left = 0
        # audits (lifetime tallies, for reporting)
        self._audits = 0
        self._audit_errors = 0.0
        self._audit_weight = 0.0
        # prequential accuracy of the chosen model
        self._recent: deque[bool] = deque(maxlen=config.accuracy_window)
        self._hits = 0
        # exactly once
        self._answered = AnsweredRequests(config.dedupe_window)
        self.feedback_offset = 0  # next feedback offset to absorb
        self.signals_offset: int | None = None  # next signals offset to read
        self.records = 0  # the record clock: records labeled, as the labelers report
        # counters (kept in snapshots, so they count each message once)
        self.learned_by_source: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.duplicates = 0
        self.promotions = 0
        self.drift_counts: Counter[str] = Counter()
        self.classes = ClassView()  # which classes automation leaves out
        self._flagged: dict[str, tuple[str, ...]] = {}

    def _new_candidate(self, settings: ModelSettings, generation: int) -> Candidate:
        return Candidate(
            settings,
            OnlineClassifier(settings, self._top_k),
            RiskController(self._risk_config),
            generation,
        )

    # ------------------------------------------------------------------ what labelers see

    @property
    def classifier(self) -> Classifier:
        """The model that labels."""
        return self.candidates[self.chosen].model

    @property
    def audit_rate(self) -> float:
        cfg = self.config
        if self._boost_left > 0:
            return cfg.drift_audit_rate
        cert = self.certificate
        if not cert.certified:
            return cfg.audit_rate
        gap = cert.precision_lower_bound - cfg.risk.target_precision
        if gap < cfg.close_margin:
            return min(2.0 * cfg.audit_rate, cfg.drift_audit_rate)
        if gap > cfg.far_margin and self._audits_confirm:
            return max(0.5 * cfg.audit_rate, cfg.min_audit_rate)
        return cfg.audit_rate

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A snapshot from before AnsweredRequests holds the answered requests as a dict
        # of whole MACs, and their window apart.
        answered = state.get("_answered")
        if isinstance(answered, OrderedDict):
            window = state.pop("_dedupe_window", len(answered))
            state["_answered"] = AnsweredRequests.of(answered, window)
        self.__dict__.update(state)

    def view(self) -> LabelerView:
        """The immutable picture labelers decide from (it references the current model:
        publish it through a snapshot, or never learn while a labeler uses it)."""
        cfg = self.config
        model = self.classifier
        learned = model.learned()
        return LabelerView(
            model=model if learned else None,
            model_version=model.version,
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

    def prescore(self, items: Sequence[tuple[Admitted | Rejected, int]]) -> Prescored:
        """Score a chunk of answers (with their offsets, at most :data:`PRESCORE_CHUNK`)
        with every candidate that can predict them in one batch, before any is learned;
        pass the result to :meth:`absorb` for each of them, in order. See the module
        docstring: the scores then come from the models as they stood before the chunk.
        Changes nothing in the controller.
        """
        if len(items) > PRESCORE_CHUNK:
            raise ValueError(f"prescore at most {PRESCORE_CHUNK} answers at a time")
        prescored = Prescored()
        chunk = [
            (item.feedback.record, offset)
            for item, offset in items
            if isinstance(item, Admitted) and offset >= self.feedback_offset
        ]
        if not chunk:
            return prescored
        records = [record for record, _ in chunk]
        for i, candidate in enumerate(self.candidates):
            model = candidate.model
            if model.learned("features") < PRESCORE_MIN_LEARNED or self._twin(i, "features"):
                continue
            try:
                predictions = model.predict_batch(records)
            except (ValueError, ArithmeticError):
                continue  # one at a time: only the answer it cannot score is refused
            if predictions is not None:
                offsets = [offset for _, offset in chunk]
                prescored.add(model, dict(zip(offsets, predictions, strict=True)))
        return prescored

    def absorb(
        self,
        item: Admitted | Rejected,
        offset: int,
        *,
        thin: int = 1,
        prescored: Prescored | None = None,
    ) -> Outcome:
        """Take the feedback message at ``offset``: learn it, skip it, or count it rejected.

        ``thin > 1`` lets the candidates that do not label skip all but every ``thin``-th
        answer (a backlog); the one that labels learns every answer. ``prescored``: the
        predictions :meth:`prescore` made of this answer's chunk (used by the models that
        made them; the others score it now).

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
        outcome = self._learn(item, max(thin, 1), offset, prescored)
        if outcome.kind == "learned" and key is not None:
            self._remember(key)
        return outcome

    def observe_signal(self, signal: ConfidenceSignal, offset: int | None = None) -> Outcome:
        """A labeler's report: records routed (the record clock), the confidence of its
        traffic, and its alarm, if any."""
        if offset is not None:
            self.signals_offset = offset + 1
        self.records += signal.records
        for candidate in self.candidates:
            candidate.evidence.expire(self.records - self.config.max_age_records)
        if not self._certified_mode:
            return Outcome("learned")
        events: list[DriftEvent] = []
        if signal.epoch == self.epoch:  # confidences of the model now in force
            for mean in signal.chunk_means:
                if math.isfinite(mean) and self._shift.update(1.0 - mean):
                    self._boost("labelers' confidence fell: auditing more")
                    self.drift_counts[DriftSignal.CONFIDENCE.value] += 1
        if signal.alarm and signal.epoch == self.epoch:
            # The labeler stopped accepting on its own: answer with a new trust epoch (it
            # resumes) and watch more closely; the audits decide whether to stop for all.
            self.epoch += 1
            self.trust_version += 1
            self._boost(f"labeler {signal.worker} raised a confidence alarm")
            events.append(
                DriftEvent(
                    DriftSignal.CONFIDENCE,
                    self.records,
                    math.nan,
                    math.nan,
                    f"labeler {signal.worker} saw the confidence of its traffic fall",
                )
            )
        return Outcome("learned", None, tuple(events), False, bool(events))

    # ------------------------------------------------------------------ learning

    def _learn(
        self, item: Admitted, thin: int, offset: int, prescored: Prescored | None
    ) -> Outcome:
        feedback = item.feedback
        kind = feedback.record.kind
        step = self.epoch_examples
        candidates = self.candidates  # a fallback below replaces the list, not these
        scores: list[Scored | None] = []
        thinned = thin > 1 and step % thin != 0 and len(candidates) > 1
        try:
            for i, candidate in enumerate(candidates):
                if thinned and i != self.chosen:
                    candidate.thinned += 1
                    scores.append(None)
                    continue
                if self._twin(i, kind, wake=True) is not None:
                    scores.append(None)  # an earlier candidate learns the same model
                    continue
                model = candidate.model
                prediction = prescored.get(model, offset) if prescored else None
                if prediction is None:
                    prediction = model.predict_one(feedback.record)
                scores.append(
                    new_tuple(Scored, (prediction, feedback.label, item.source, item.weight))
                )
        except (ValueError, ArithmeticError) as exc:  # a model cannot score it sanely
            reason = DeadLetterReason.MODEL_UPDATE_REFUSED
            self.rejected[reason.value] += 1
            error = f"the model cannot score this record ({exc}); not learned"
            return Outcome("rejected", rejection=Rejected(reason, error, feedback.id))
        scored = scores[self.chosen]
        assert scored is not None
        correct = scored.correct
        if correct is not None:
            if len(self._recent) == self._recent.maxlen:
                self._hits -= self._recent[0]
            self._recent.append(correct)
            self._hits += correct
        before = self.certificate.certified and not self.fallback
        events = self._observe(scored, candidates, scores) if self._certified_mode else []
        if self._certified_mode and self._hold_out():
            self.holdout.append(feedback)
            if len(self.holdout) > self.config.holdout_size:
                old = self.holdout.popleft()
                kind = old.record.kind
                self._teach(
                    old,
                    [
                        c
                        for i, c in enumerate(self.candidates)
                        if self._twin(i, kind, wake=True) is None
                    ],
                )
        else:
            self._teach(feedback, [c for c, s in zip(candidates, scores, strict=True) if s])
        self.learned_by_source[item.source.value] += 1
        promoted = False
        if self._certified_mode:
            self.epoch_examples += 1
            if self.schedule.due(self.epoch_examples):
                promoted = self._test()
        # acceptance stopped (the certificate is looked at again only if it was in force)
        tightened = before and not (self.certificate.certified and not self.fallback)
        return new_tuple(
            Outcome,
            ("learned", scored, tuple(events), promoted, tightened or promoted, None, thinned),
        )

    def _teach(self, feedback: Feedback, candidates: Sequence[Candidate]) -> None:
        for candidate in candidates:
            try:
                if candidate.model.learn(feedback.record, feedback.label) is True:
                    # a remapped model renamed a label: it is another predictor now, and
                    # its evidence starts again (a rule of past answers only)
                    candidate.evidence.reset()
            except NonFiniteOutput as exc:
                raise ModelUpdateRefused(
                    f"learning {feedback.id!r} made the model non-finite ({exc})"
                ) from exc
            except Exception as exc:  # the model is in an unknown state: roll it back
                raise ModelUpdateRefused(
                    f"learning {feedback.id!r} failed inside {candidate.name} ({exc!r})"
                ) from exc

    def _twin(self, index: int, kind: RecordKind, *, wake: bool = False) -> Candidate | None:
        """The earlier candidate that candidate ``index`` would only repeat on an answer of
        ``kind``; ``None`` when it learns the answer itself.

        A candidate is one model per kind, so naming one model for a kind while another
        kind is ``auto`` makes several candidates with the same model for the first kind.
        One that has learned nothing, created in the same epoch as an earlier one and
        built the same for every kind that one learned and for ``kind``, would learn and
        score exactly what the earlier one does: it sits out (no learning, no evidence,
        no share of ``delta``). When an answer of a kind where they differ arrives
        (``wake``), it starts from copies of the earlier one's models and learns on.
        """
        candidate = self.candidates[index]
        model = candidate.model
        if index == self.chosen or not isinstance(model, OnlineClassifier) or model.learned():
            return None
        for twin in self.candidates[:index]:
            if twin.generation != candidate.generation or not isinstance(
                twin.model, OnlineClassifier
            ):
                continue
            learned = twin.model.kinds()
            if not all(_same_model(twin.settings, candidate.settings, k) for k in learned):
                continue
            if _same_model(twin.settings, candidate.settings, kind):
                return twin
            if wake and learned:
                model.adopt(twin.model, learned)
                log.info("%s starts from copies of %s's models", candidate.name, twin.name)
            return None
        return None

    def _remember(self, key: bytes) -> None:
        self._answered.add(key)

    def _hold_out(self) -> bool:
        share = self.config.holdout_share
        return share > 0 and self._holdout_rng.random() < share

    # ------------------------------------------------------------------ evidence and monitoring

    def _observe(
        self, scored: Scored, candidates: Sequence[Candidate], scores: Sequence[Scored | None]
    ) -> list[DriftEvent]:
        events: list[DriftEvent] = []
        prediction, correct = scored.prediction, scored.correct
        if prediction is not None and correct is not None and not self.fallback:
            if scored.source is FeedbackSource.AUDIT:
                self._audits += 1
                self._audit_weight += scored.weight
                self._audit_errors += scored.weight * (not correct)
                self._boost_left = max(self._boost_left - 1, 0)
                if (refuted := self._refuted(prediction.label, not correct)) is not None:
                    events.append(refuted)
            else:
                excess = (float(not correct) - (1.0 - prediction.confidence) + 1.0) / 2.0
                if self._excess.update(excess):
                    reference = self._excess.reference or 0.0
                    events.append(
                        DriftEvent(
                            DriftSignal.PREQUENTIAL_ERROR,
                            self.records,
                            2 * reference - 1,
                            math.nan,
                            "reviewed records' errors rose beyond what the model's confidence"
                            f" predicts (by more than {2 * self.config.excess_margin:.2f})",
                        )
                    )
        if events:
            self._enter_fallback(events[0])
        if prediction is not None or scored.source is not FeedbackSource.AUDIT:
            self.classes.observe(
                scored.label,
                prediction.label if prediction is not None else None,
                weight=scored.weight if scored.source is FeedbackSource.AUDIT else 1.0,
                audit=scored.source is FeedbackSource.AUDIT,
            )
        # Per candidate, what _observe() below does, written out (once per answer).
        prequential, records = self._prequential, self.records
        for candidate, s in zip(candidates, scores, strict=True):
            if s is None or (p := s.prediction) is None:
                continue
            right = p.label == s.label  # s.correct
            candidate.scored += 1
            candidate.hits += right
            if prequential:
                weight = s.weight if s.source is FeedbackSource.AUDIT else 1.0
                candidate.evidence.observe(p.confidence, p.label, right, weight, records)
        return events

    @property
    def _audits_confirm(self) -> bool:
        """Audits have shown the accepted labels right far more often than the target."""
        return self._confirm.rejected

    def _refuted(self, label: str, wrong: bool) -> DriftEvent | None:
        """An audit of the accepted region: does the evidence now refute the certificate?

        Three tests share ``refute_alpha``: a betting test of the accepted error against
        ``1 - target`` overall, the same bets per predicted class as e-detectors (a swap of
        two classes shows there first), and a change detector on the audit error against
        its own level.
        """
        x = float(wrong)
        self._confirm.update(1.0 - x)  # H0: right at most 1 - epsilon/2 of the time
        fired = self._refute.update(x)
        test = self._class_refute.get(label)
        if test is None and len(self._class_refute) < MAX_CLASS_TESTS:
            # The certificate bounds the whole accepted region, not each class: a class is
            # refuted when its own audits put it beyond a looser bound (a swapped or broken
            # class shows there within a few audits). A detector, not a test: a class
            # right for a long time must not first pay back the debt of its right audits.
            test = BettingDetector(
                bound=min(self.config.class_refute_factor * self.config.epsilon, 0.5),
                alpha=self.config.refute_alpha / (3 * MAX_CLASS_TESTS),
            )
            self._class_refute[label] = test
        fired_class = test.update(x) if test is not None else False
        changed = self._audit_change.update(x)
        if not (fired or fired_class or changed):
            return None
        target = self.config.risk.target_precision
        if changed and not (fired or fired_class):
            reference = self._audit_change.reference or 0.0
            detail = (
                f"audited labels turned wrong more often than before (from about"
                f" {reference:.1%}, by more than {self.config.audit_change_margin:.0%})"
            )
        else:
            used = self._refute if fired else test
            assert used is not None
            where = "overall" if fired else f"for predicted class {label!r}"
            detail = (
                f"audits refute the certified precision of {target:.0%} {where}"
                f" (e-value {used.e_value:.0f} after {used.n} audits)"
            )
        return DriftEvent(DriftSignal.AUDIT_ERROR, self.records, self.config.epsilon, x, detail)

    def _test(self) -> bool:
        """A scheduled certification test of every candidate; True when the chosen changed."""
        if self._prequential:
            # A test that cannot certify anything (too little evidence anywhere, whatever
            # the answers) is skipped: it spends no budget. Only testable candidates share
            # the level (Bonferroni over them): that choice depends on counts, not answers.
            preview = self.schedule.preview() / len(self.candidates)
            testable = [c for c in self.candidates if c.evidence.testable(preview)]
            if not testable:
                self.schedule.postpone()
                return False
            alpha = self.schedule.take() / len(testable)
            certificates = [
                c.evidence.certify(alpha) if c in testable else Certificate()
                for c in self.candidates
            ]
        else:
            alpha = self.schedule.take() / len(self.candidates)
            certificates = [self._certify_holdout(c.model, alpha) for c in self.candidates]
        for candidate, cert in zip(self.candidates, certificates, strict=True):
            candidate.certificate = cert
        current = certificates[self.chosen]
        best = max(range(len(certificates)), key=lambda i: certificates[i].share)
        margin = self.config.switch_margin if current.certified else 0.0
        switch = (
            best != self.chosen
            and certificates[best].certified
            and certificates[best].share > current.share + margin
        )
        if switch:
            self._switch(best)
            self._refresh_monitors()
            current = certificates[best]
        if current.certified:
            changed = current.global_threshold != self.certificate.global_threshold or (
                current.class_thresholds != self.certificate.class_thresholds
            )
            if changed or self.fallback:
                self.trust_version += 1
            if self.fallback:
                self._leave_fallback(current)
            else:
                if changed:
                    self._boost("a new certificate")
                self.certificate = current
            self.certified_once = True
        # A test that certifies nothing keeps the certificate in force: it was valid when
        # issued, the monitors watch it, and a stricter level is not evidence against it.
        return switch

    def _certify_holdout(self, model: Classifier, alpha: float) -> Certificate:
        risk = RiskController(self._risk_config)
        for feedback in self.holdout:
            prediction = model.predict_one(feedback.record)
            _observe(risk, Scored(prediction, feedback.label, FeedbackSource.REVIEW), 0)
        return risk.certify(alpha)

    def _switch(self, index: int) -> None:
        self.trust_version += 1
        old, new = self.candidates[self.chosen], self.candidates[index]
        new.model.version = max(new.model.version, old.model.version + 1)
        self.chosen = index
        self.promotions += 1
        self._recent.clear()
        self._hits = 0
        self._shift.reset()  # another model's confidence: a new baseline
        self._excess.reset()
        log.warning(
            "labeling with %s now: it certifies %.0f%% automation, %s %.0f%%",
            new.name,
            100 * new.certificate.share,
            old.name,
            100 * old.certificate.share,
        )

    def _refresh_monitors(self) -> None:
        """Another model labels: its audits start afresh, raised for a while."""
        self._refute.reset()
        self._class_refute.clear()
        self._audit_change.reset()
        self._confirm.reset()
        self._boost("another model labels")

    def _boost(self, why: str) -> None:
        if self._boost_left < self.config.boost_audits:
            log.info("auditing at %.0f%%: %s", 100 * self.config.drift_audit_rate, why)
            self.trust_version += 1
        self._boost_left = self.config.boost_audits

    def _enter_fallback(self, event: DriftEvent) -> None:
        """Stop accepting and start over on post-change evidence (the one recovery path)."""
        self.drift_counts[event.signal.value] += 1
        log.warning("drift detected on %s: %s; auto-accepting stops", event.signal, event.detail)
        if self.fallback:
            return
        self.fallback = True
        self.trust_version += 1
        self.epoch += 1
        self.schedule.new_epoch()
        self.epoch_examples = 0
        self.holdout.clear()  # pre-change examples are stale evidence
        self.certificate = Certificate()
        self._excess.reset()
        self.classes.reset()
        # The model in use keeps learning (it may adapt), and a fresh copy of each family
        # starts from nothing, so a model trained on post-change answers only is always
        # among the candidates.
        # Only the model in use stays among the old ones: every candidate is tested at
        # alpha / candidates, so the set is kept small.
        generation = self.schedule.epoch
        fresh = [self._new_candidate(f, generation) for f in self._families]
        current = self.candidates[self.chosen]
        self.candidates = [current, *fresh]
        share = self.config.remap_evidence_share
        size = len(pickle.dumps(current.model, protocol=5)) if share > 0 else 0
        if 0 < size <= self.config.remap_max_bytes:
            # ... and a frozen copy of it whose labels are renamed to what reviewers now
            # call them (model/remap.py): after a swap of classes it is right again at
            # once. A fixed, mature predictor has no young model's overconfident errors at
            # its top, so its test sequences may start from less evidence. (Not for a
            # model of megabytes: the copy would double the snapshots of the fallback.)
            risk = replace(self._risk_config, min_evidence=share * self._risk_config.min_evidence)
            remapped = RemappedClassifier(copy.deepcopy(current.model))
            self.candidates.append(
                Candidate(current.settings, remapped, RiskController(risk), generation)
            )
        elif size:
            log.info("no renamed copy of %s in this recovery: %d bytes", current.name, size)
        self.chosen = 0
        for candidate in self.candidates:
            candidate.evidence.reset()
            candidate.scored = candidate.hits = 0
            candidate.certificate = Certificate()

    def _leave_fallback(self, certificate: Certificate) -> None:
        """Certified on post-change evidence: accept again; keep one model per family."""
        self.fallback = False
        self.certificate = certificate
        self._refresh_monitors()
        chosen = self.candidates[self.chosen]
        keep: dict[str, Candidate] = {}  # per family: the chosen, else the more accurate
        for candidate in self.candidates:
            if candidate is not chosen and isinstance(candidate.model, RemappedClassifier):
                continue  # it never learns again: only worth keeping while it labels
            other = keep.get(candidate.name)
            if (
                other is None
                or candidate is chosen
                or (other is not chosen and candidate.accuracy > other.accuracy)
            ):
                keep[candidate.name] = candidate
        self.candidates = list(keep.values())
        self.chosen = self.candidates.index(chosen)
        log.warning(
            "drift fallback over after %d post-change answers: labeling with %s (certified"
            " precision >= %.1f%%)",
            self.epoch_examples,
            chosen.name,
            100 * certificate.precision_lower_bound,
        )

    # ------------------------------------------------------------------ reporting

    @property
    def audit_error_rate(self) -> float | None:
        """Weighted error rate among audited records (the accepted region), if any."""
        return self._audit_errors / self._audit_weight if self._audit_weight else None

    @property
    def rolling_accuracy(self) -> float | None:
        """Prequential accuracy of the chosen model over the last ``accuracy_window``."""
        return self._hits / len(self._recent) if self._recent else None

    def flagged_classes(self) -> dict[str, tuple[str, ...]]:
        """Classes automation leaves out (see :mod:`autolabel.trust.classes`); a change in
        the set is logged."""
        flags = self.classes.flags()
        if flags != self._flagged:
            for label, why in flags.items():
                if self._flagged.get(label) != why:
                    share, auto = self.classes.share(label)
                    log.warning(
                        "class %r: %s (%.1f%% of records, %.1f%% of them auto-labeled)",
                        label,
                        " and ".join(why),
                        100 * share,
                        100 * auto,
                    )
            self._flagged = flags
        return flags

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
            chosen=self.candidates[self.chosen].name,
            candidates=len(self.candidates),
            delta_spent=self.schedule.spent,
            flagged_classes=len(self.flagged_classes()),
        )


_SETTING_OF_KIND: dict[RecordKind, str] = {
    "features": "tabular",
    "text": "text",
    "embedding": "embedding",
}


def _same_model(a: ModelSettings, b: ModelSettings, kind: RecordKind) -> bool:
    """Whether two candidates' settings build the same model for records of ``kind``."""
    field_name = _SETTING_OF_KIND[kind]
    return bool(getattr(a, field_name) == getattr(b, field_name) and a.seed == b.seed)


def chunk_means(confidences: Sequence[float], pending: list[float]) -> list[float]:
    """Means of consecutive ``CONFIDENCE_CHUNK`` confidences; the remainder stays in
    ``pending`` for the next call. Non-finite values are skipped.

    >>> pending: list[float] = []
    >>> chunk_means([1.0] * 8 + [0.5] * 3, pending), pending
    ([1.0], [0.5, 0.5, 0.5])
    """
    if not math.isfinite(sum(confidences)):  # a NaN or infinity in there (or overflow)
        confidences = [c for c in confidences if math.isfinite(c)]
    out = []
    start = 0
    while len(pending) + len(confidences) - start >= CONFIDENCE_CHUNK:
        stop = start + CONFIDENCE_CHUNK - len(pending)
        pending.extend(confidences[start:stop])
        out.append(math.fsum(pending) / CONFIDENCE_CHUNK)
        pending.clear()
        start = stop
    pending.extend(confidences[start:])
    return out


def _observe(risk: RiskController, scored: Scored, at: int) -> None:
    """Evidence for a risk controller; audits stand for ``weight`` records."""
    if scored.prediction is None or scored.correct is None:
        return
    weight = scored.weight if scored.source is FeedbackSource.AUDIT else 1.0
    risk.observe(scored.prediction.confidence, scored.prediction.label, scored.correct, weight, at)
