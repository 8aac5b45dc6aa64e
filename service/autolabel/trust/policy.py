"""The acceptance policy a labeler applies: accept a predicted label, or send it to review.

A labeler decides from a :class:`LabelerView`, an immutable picture of what the learner
(the single writer of all trust state, :class:`~autolabel.trust.controller.TrustController`)
published: the model to predict with, the certificate, whether drift fallback is on, the
audit rate, how much has been learned. Labelers swap views between batches; they never
change one. A labeler may only *tighten* on its own (``hold``: stop accepting on a local
alarm), never loosen.

Decisions, in order:

1. no model for the record's kind yet, or fewer than ``cold_start_examples`` learned,
   or (certified mode) nothing ever certified yet → review, reason ``cold_start``;
2. drift fallback, or the labeler's own ``hold`` → review, reason ``drift``;
3. confidence ≥ the threshold for the predicted class → accept (``certified``, or
   ``confident`` in fixed mode), except a random share ``audit_rate`` that goes to
   review with reason ``audit`` (certified mode);
4. otherwise → review, reason ``uncertain``, most informative (close calls) first; also
   when a certificate granted earlier lapsed (the evidence no longer supports any
   threshold): the model is not new, its predictions are just not trusted now.

>>> from autolabel.model.classifier import Prediction
>>> from autolabel.trust.risk import Certificate
>>> view = LabelerView(certificate=Certificate(global_threshold=0.8,
...                    precision_lower_bound=0.96), learned=500, audit_rate=0.1)
>>> sure, unsure = Prediction("cat", 0.97, 0.95, ()), Prediction("cat", 0.6, 0.2, ())
>>> [d.reason.value for d in view.decide([sure, sure, unsure, None], [0.5, 0.05, 0.5, 0.5])]
['certified', 'audit', 'uncertain', 'cold_start']
>>> view.decide([sure], [0.5], hold=True)[0].reason.value
'drift'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import itemgetter, lt, not_
from typing import TYPE_CHECKING, Literal, NamedTuple

from autolabel.core.messages import AcceptReason, ReviewReason
from autolabel.core.tuples import new_tuple
from autolabel.model.classifier import Prediction
from autolabel.trust.risk import Certificate

if TYPE_CHECKING:
    from autolabel.model.classifier import Classifier


AUDIT_PRIORITY = 0.5
"""Audits are evidence, not information: they sort after close calls."""

_LABEL = itemgetter(0)  # of a Prediction
_CONFIDENCE = itemgetter(1)


class Decision(NamedTuple):
    """Where one record goes and why (a tuple: one is built per record)."""

    accept: bool
    reason: AcceptReason | ReviewReason
    threshold: float
    priority: float = 0.0  # review order: higher first
    sample_weight: float = 1.0  # records this review stands for (1 / audit rate for audits)


def review_priority(prediction: Prediction | None) -> float:
    """Most informative first: a small top-1/top-2 margin means a useful label.

    >>> review_priority(None), review_priority(Prediction("a", 0.5, 0.0, ()))
    (1.0, 1.0)
    >>> review_priority(Prediction("a", 0.9, 0.8, ()))
    0.2
    """
    if prediction is None:
        return 1.0
    return round(min(max(1.0 - prediction.margin, 0.0), 1.0), 6)


@dataclass(frozen=True, slots=True)
class LabelerView:
    """Everything a labeler decides with; published by the learner, never changed.

    ``model`` is the predictor (``None`` before anything was learned); ``learned``
    counts the examples it learned; ``epoch`` changes whenever evidence was reset
    (drift), so a labeler knows its local alarm has been answered.
    """

    model: Classifier | None = None
    model_version: int = 0
    learned: int = 0
    epoch: int = 0
    mode: Literal["certified", "fixed"] = "certified"
    certificate: Certificate = field(default_factory=Certificate)
    fixed_threshold: float = 0.9
    fallback: bool = False
    certified_once: bool = False  # a certificate was granted before (lapses are not cold start)
    audit_rate: float = 0.05
    cold_start_examples: int = 50
    feedback_offset: int = 0  # feedback absorbed by the learner when it published this

    @property
    def accepting(self) -> bool:
        """Whether any record can be auto-accepted with this view."""
        if self.learned < self.cold_start_examples:
            return False
        if self.mode == "fixed":
            return True
        return self.certificate.certified and not self.fallback

    def threshold_for(self, label: str) -> float:
        if self.mode == "fixed":
            return self.fixed_threshold
        return self.certificate.threshold_for(label)

    def decide(
        self,
        predictions: Sequence[Prediction | None],
        draws: Sequence[float] | Callable[[Sequence[int]], Sequence[float]],
        *,
        hold: bool = False,
    ) -> list[Decision]:
        """Route a batch of predictions.

        ``draws`` are uniform numbers in ``[0, 1)``, one per prediction (or a function
        giving them for the positions asked, so the labeler only draws for records that
        would be accepted): a record is audited when its draw is below ``audit_rate``.
        """
        if self.mode == "fixed":  # accepts share one decision, as the certified mode's
            t = self.fixed_threshold
            accept = Decision(True, AcceptReason.CONFIDENT, t)
            warm = self.learned >= self.cold_start_examples
            return [
                accept if warm and p is not None and p.confidence >= t else self._fixed(p)
                for p in predictions
            ]
        if not self.accepting or hold:
            if self.learned < self.cold_start_examples:
                reason = ReviewReason.COLD_START
            elif self.fallback or hold:
                reason = ReviewReason.DRIFT
            elif self.certified_once:
                reason = ReviewReason.UNCERTAIN
            else:
                reason = ReviewReason.COLD_START
            return [
                Decision(
                    False,
                    ReviewReason.COLD_START if p is None else reason,
                    math.inf,
                    review_priority(p),
                )
                for p in predictions
            ]
        cert = self.certificate
        threshold_of = cert.class_thresholds.get  # Certificate.threshold_for, inlined
        default = cert.global_threshold
        cold = Decision(False, ReviewReason.COLD_START, math.inf, 1.0)
        uncertain = ReviewReason.UNCERTAIN
        decisions: list[Decision | None]
        candidates: list[int]
        labels: Sequence[str | None]
        if all(predictions):  # the usual batch, every record predicted: compared in C
            predicted: list[str] = list(map(_LABEL, predictions))  # type: ignore[arg-type]
            thresholds = list(map(threshold_of, predicted, repeat(default)))
            below = list(map(lt, map(_CONFIDENCE, predictions), thresholds))  # type: ignore[arg-type]
            labels = predicted
            positions = range(len(below))
            decisions = [None] * len(below)
            for i in compress(positions, below):  # review_priority(p), inlined
                margin = predictions[i].margin  # type: ignore[union-attr]
                priority = round(min(max(1.0 - margin, 0.0), 1.0), 6)
                decisions[i] = new_tuple(Decision, (False, uncertain, thresholds[i], priority, 1.0))
            candidates = list(compress(positions, map(not_, below)))
        else:
            decisions, candidates = [], []
            labels = [None if p is None else p.label for p in predictions]
            for i, p in enumerate(predictions):
                if p is None:
                    decisions.append(cold)  # decisions are immutable: one serves every record
                    continue
                threshold = threshold_of(p.label, default)
                if p.confidence < threshold:  # review_priority(p), inlined
                    priority = round(min(max(1.0 - p.margin, 0.0), 1.0), 6)
                    decisions.append(
                        new_tuple(Decision, (False, uncertain, threshold, priority, 1.0))
                    )
                else:
                    decisions.append(None)
                    candidates.append(i)
        if candidates:
            drawn = draws(candidates) if callable(draws) else [draws[i] for i in candidates]
            rate = self.audit_rate
            weight = 1.0 / rate
            audits: dict[str, Decision] = {}  # by label: one decision per label serves all
            accepts: dict[str, Decision] = {}
            for i, u in zip(candidates, drawn, strict=True):
                label = labels[i]
                assert label is not None  # a candidate was predicted
                if u < rate:
                    decision = audits.get(label)
                    if decision is None:
                        threshold = threshold_of(label, default)
                        decision = audits[label] = Decision(
                            False, ReviewReason.AUDIT, threshold, AUDIT_PRIORITY, weight
                        )
                else:
                    decision = accepts.get(label)
                    if decision is None:
                        threshold = threshold_of(label, default)
                        decision = accepts[label] = Decision(
                            True, AcceptReason.CERTIFIED, threshold
                        )
                decisions[i] = decision
        return decisions  # type: ignore[return-value]  # every slot is filled

    def _fixed(self, p: Prediction | None) -> Decision:
        t = self.fixed_threshold
        if p is None or self.learned < self.cold_start_examples:
            return Decision(False, ReviewReason.COLD_START, t, review_priority(p))
        if p.confidence >= t:
            return Decision(True, AcceptReason.CONFIDENT, t)
        return Decision(False, ReviewReason.UNCERTAIN, t, review_priority(p))
