"""The labeler's pure core: a batch of raw messages in, one routing decision per message out.

:class:`LabelerCore` holds what one labeler owns: the
:class:`~autolabel.trust.policy.LabelerView` it decides with (swapped between batches, never
changed), and its local confidence alarm. :meth:`LabelerCore.route` decodes and validates
every message, predicts the valid ones with the view's model in one batch, and lets the
view decide each: accept, review, or (invalid, or the model failed on it) reject. It
returns decisions, not bytes: :mod:`autolabel.core.outputs` turns them into messages, and
``autolabel evaluate`` reads them directly.

The local alarm: the labeler watches the confidence of its own traffic (means of
``CONFIDENCE_CHUNK`` predictions). When it falls, the labeler stops accepting at once
(reason ``drift``) and says so in its next :class:`~autolabel.core.messages.ConfidenceSignal`;
it resumes only on a view from a later trust epoch, i.e. once the learner has answered.
A labeler can tighten on its own; it can never loosen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import NamedTuple

from autolabel.core.codec import Consumed, Rejected, decode_records
from autolabel.core.messages import (
    DEFAULT_MAX_ABS_NUMBER,
    DeadLetterReason,
    PlainRecord,
    Record,
    RecordLike,
)
from autolabel.core.requests import RequestIssuer
from autolabel.core.tuples import new_tuple
from autolabel.model.classifier import Prediction
from autolabel.trust.controller import chunk_means
from autolabel.trust.drift import DriftConfig, DriftMonitor
from autolabel.trust.policy import Decision, LabelerView


@dataclass(frozen=True, slots=True)
class Inbound:
    """One consumed message, with the coordinates dead-letters must carry."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class Routed(NamedTuple):
    """Where one consumed message goes: a decision about its record, or a rejection."""

    msg: Consumed
    record: Record | PlainRecord | None
    prediction: Prediction | None
    decision: Decision | None  # None when rejected
    rejected: Rejected | None


_PREDICTION = itemgetter(2)  # of a Routed
_DECISION = itemgetter(3)
_REJECTED = itemgetter(4)
_ACCEPT_REASON = itemgetter(0, 1)  # of a Decision
_CONFIDENCE = itemgetter(1)  # of a Prediction
_ID = attrgetter("id")  # of a record
_VALUE = attrgetter("value")  # of a consumed message


@dataclass(slots=True)
class RoutedBatch:
    """A batch's decisions, in input order, and what the learner should hear of it."""

    view: LabelerView
    items: list[Routed]
    chunk_means: list[float] = field(default_factory=list)
    alarm: bool = False  # the local alarm fired on this batch
    hold: bool = False  # acceptance was held by the local alarm
    records: int = 0  # records routed since the last signal, this batch included

    def tally(self) -> tuple[Counter[str], Counter[str], Counter[str]]:
        """Decisions by accept reason, review reason and dead-letter reason."""
        accepted: Counter[str] = Counter()
        reviewed: Counter[str] = Counter()
        dead: Counter[str] = Counter()
        items = self.items
        if any(map(_REJECTED, items)) or not all(map(_DECISION, items)):
            for item in items:
                if item.rejected is not None:
                    dead[item.rejected.reason.value] += 1
                elif item.decision is not None:
                    (accepted if item.decision.accept else reviewed)[item.decision.reason] += 1
            return accepted, reviewed, dead
        # The usual batch (nothing rejected, every item decided): counted in C
        # by (accept, reason), then split.
        for (accept, reason), n in Counter(map(_ACCEPT_REASON, map(_DECISION, items))).items():
            (accepted if accept else reviewed)[reason] += n
        return accepted, reviewed, dead

    def confidences(self) -> list[float]:
        """The confidence of every prediction of the batch, in order."""
        return list(map(_CONFIDENCE, filter(None, map(_PREDICTION, self.items))))


class LabelerCore:
    """One labeler's decisions: the view in force and the local alarm.

    >>> from autolabel.core.requests import RequestIssuer
    >>> core = LabelerCore(RequestIssuer(b"s" * 32))
    >>> batch = core.route([Inbound("records", 0, 0, b"a", b'{"id": "a", "text": "hi"}'),
    ...                     Inbound("records", 0, 1, None, b"{")], max_message_bytes=1000)
    >>> [(i.decision.reason.value if i.decision else i.rejected.reason.value)
    ...  for i in batch.items]
    ['cold_start', 'invalid_json']
    """

    def __init__(
        self,
        issuer: RequestIssuer,
        view: LabelerView | None = None,
        *,
        drift: DriftConfig | None = None,
    ) -> None:
        self.issuer = issuer
        self.view = view if view is not None else LabelerView()
        self._drift_config = drift or DriftConfig(
            confidence_direction="decrease", confidence_warmup=25
        )
        self._monitor = DriftMonitor(self._drift_config)
        self._pending: list[float] = []
        self._alarm_epoch: int | None = None  # epoch of the view the alarm fired under
        self._alarm_sent = False
        self._records = 0  # routed since the last signal

    @property
    def hold(self) -> bool:
        """Acceptance held by the local alarm, until a view from a later epoch arrives."""
        return self._alarm_epoch is not None

    def swap(self, view: LabelerView) -> None:
        """Decide the next batches with ``view``; a later epoch answers the local alarm."""
        if view.epoch != self.view.epoch:
            self._monitor = DriftMonitor(self._drift_config)  # a new baseline
            self._pending.clear()
        if self._alarm_epoch is not None and view.epoch > self._alarm_epoch:
            self._alarm_epoch = None
            self._alarm_sent = False
        self.view = view

    def route(
        self,
        batch: Sequence[Consumed],
        *,
        max_message_bytes: int,
        max_abs_number: float = DEFAULT_MAX_ABS_NUMBER,
    ) -> RoutedBatch:
        """Decode, predict and decide every message; never raises on bad data."""
        view = self.view
        decoded = decode_records(
            list(map(_VALUE, batch)), max_bytes=max_message_bytes, max_abs_number=max_abs_number
        )
        valid = [r for r in decoded if not isinstance(r, Rejected)]
        usable, failures = _predict(view, valid)
        epoch = view.epoch
        decisions = view.decide(
            usable,
            lambda positions: self.issuer.audit_draws(
                list(map(_ID, map(valid.__getitem__, positions))), epoch
            ),
            hold=self.hold,
        )
        confidences = list(map(_CONFIDENCE, filter(None, usable)))
        if not failures and len(valid) == len(batch):  # the usual batch: one pass, in C
            items = list(
                map(new_tuple, repeat(Routed), zip(batch, valid, usable, decisions, repeat(None)))
            )
        else:
            items = _items(batch, decoded, usable, decisions, failures)
        out = RoutedBatch(view, items, hold=self.hold)
        out.chunk_means = chunk_means(confidences, self._pending)
        self._records += len(items)
        if view.accepting and self._alarm_epoch is None:
            for mean in out.chunk_means:
                if self._monitor.update_confidence(mean) is not None:
                    self._alarm_epoch = view.epoch
                    break
        if self._alarm_epoch is not None and not self._alarm_sent:
            out.alarm = True
            self._alarm_sent = True
        if out.chunk_means or out.alarm:  # this batch sends a signal: it carries the count
            out.records, self._records = self._records, 0
        return out

    def unsent(self, batch: RoutedBatch) -> None:
        """``batch`` was not delivered and will be routed again: send its alarm again, and
        keep the count of the batches before it (the retry counts its own records)."""
        if batch.alarm and self._alarm_epoch is not None:
            self._alarm_sent = False
        if batch.records:
            self._records += batch.records - len(batch.items)


def _items(
    batch: Sequence[Consumed],
    decoded: Sequence[Record | PlainRecord | Rejected],
    usable: Sequence[Prediction | None],
    decisions: Sequence[Decision],
    failures: dict[int, Exception],
) -> list[Routed]:
    """The routed items of a batch with rejections or model failures, in input order."""
    items: list[Routed] = []
    k = 0
    for msg, parsed in zip(batch, decoded, strict=True):
        if isinstance(parsed, Rejected):
            items.append(Routed(msg, None, None, None, parsed))
            continue
        j, k = k, k + 1
        failed = failures.get(j)
        if failed is not None:  # one record's model failure costs only that record
            error = Rejected(
                DeadLetterReason.PROCESSING_ERROR, f"model failed: {failed}", parsed.id
            )
            items.append(Routed(msg, parsed, None, None, error))
            continue
        items.append(Routed(msg, parsed, usable[j], decisions[j], None))
    return items


def _predict(
    view: LabelerView, records: Sequence[RecordLike]
) -> tuple[list[Prediction | None], dict[int, Exception]]:
    """The batch's predictions (``None`` where there is none or the model failed) and the
    failures by position; if the batch path fails, record by record, so that one bad
    record costs only itself."""
    model = view.model
    if model is None:
        return [None] * len(records), {}
    try:
        return list(model.predict(records)), {}
    except Exception:
        results: list[Prediction | None] = []
        failures: dict[int, Exception] = {}
        for i, record in enumerate(records):
            try:
                results.append(model.predict_one(record))
            except Exception as exc:
                results.append(None)
                failures[i] = exc
        return results, failures
