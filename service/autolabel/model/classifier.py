"""The online classifier the labeler predicts with and the learner teaches.

One River pipeline per record kind, created on the first labeled example of
that kind. ``version`` counts learned examples; every label carries it.

>>> from autolabel.core.messages import Record
>>> from autolabel.settings import ModelSettings
>>> clf = OnlineClassifier(ModelSettings())
>>> r = Record(id="1", features={"x": 1.0})
>>> clf.predict([r]) == [None]   # nothing learned yet: no prediction
True
>>> clf.learn(r, "a"); clf.learn(Record(id="2", features={"x": -1.0}), "b")
>>> p = clf.predict([r])[0]
>>> p.label, p.top[0][0], clf.version
('a', 'a', 2)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from itertools import repeat
from typing import Any, NamedTuple, Protocol

import numpy as np

from autolabel.core.messages import RecordKind, RecordLike
from autolabel.core.tuples import new_tuple
from autolabel.model.factory import build_model
from autolabel.model.fast_path import fast_path
from autolabel.model.fast_softmax import CompiledSoftmax, FloatArray, compile_softmax
from autolabel.model.finite import FiniteCheck
from autolabel.settings import ModelSettings


class NonFiniteOutput(ValueError):
    """The model's output for a record is not a finite probability (NaN or infinity):
    the record cannot be labeled, and a model would not learn from it sanely."""


class Prediction(NamedTuple):
    """What the model thinks of one record (a tuple: one is built per record)."""

    label: str
    confidence: float
    margin: float  # top-1 minus top-2 probability; small = informative to review
    top: tuple[tuple[str, float], ...]  # labels by probability, best first

    @classmethod
    def from_proba(cls, proba: Mapping[Hashable, float], top_k: int = 3) -> Prediction | None:
        """Normalise a River ``predict_proba_one`` result; ``None`` when it is empty.

        >>> Prediction.from_proba({"a": 0.25, "b": 0.5, "c": 0.25}, top_k=2)
        Prediction(label='b', confidence=0.5, margin=0.25, top=(('b', 0.5), ('a', 0.25)))
        >>> Prediction.from_proba({"a": float("nan"), "b": 0.5})
        Traceback (most recent call last):
        ...
        autolabel.model.classifier.NonFiniteOutput: the model gave a non-finite probability
        """
        values = list(proba.values())
        # One sum instead of a test per value: NaN and infinities propagate through it;
        # only if it is not finite (or overflowed) are the values looked at one by one.
        total = sum(values)
        if not math.isfinite(total) and not all(map(math.isfinite, values)):
            raise NonFiniteOutput("the model gave a non-finite probability")
        if values and min(values) > 0:
            shares = [float(v) / total for v in values]
        else:
            total = sum(v for v in values if v > 0)
            if not values or total <= 0:
                return None
            shares = [max(float(v), 0.0) / total for v in values]
        # By share, best first; equal shares keep the model's order (a stable sort).
        order = sorted(range(len(shares)), key=shares.__getitem__, reverse=True)
        labels = list(proba)
        best = shares[order[0]]
        second = shares[order[1]] if len(order) > 1 else 0.0
        return cls(
            label=str(labels[order[0]]),
            confidence=best,
            margin=best - second,
            top=tuple((str(labels[i]), round(shares[i], 6)) for i in order[:top_k]),
        )

    @staticmethod
    def from_rows(proba: FloatArray, classes: Sequence[str], top_k: int = 3) -> list[Prediction]:
        """Predictions from a probability matrix (rows: records, columns: ``classes``)."""
        return _rows_to_predictions(proba, classes, top_k)


def _rows_to_predictions(proba: FloatArray, classes: Sequence[str], top_k: int) -> list[Prediction]:
    if not np.isfinite(proba).all():
        raise NonFiniteOutput("the model gave a non-finite probability")
    order = np.argsort(-proba, axis=1, kind="stable")[:, :top_k]
    ranked = np.take_along_axis(proba, order, axis=1)
    second = ranked[:, 1] if ranked.shape[1] > 1 else np.zeros(len(ranked))
    k = order.shape[1]
    labels = np.asarray(classes, dtype=object)[order].ravel().tolist()
    # Built in C (zip, tuple.__new__), from flat lists: a Python-level step per record
    # costs more than the arithmetic here. The (label, share) pairs of every record in
    # one pass, then grouped k by k into each record's ``top``.
    pairs = zip(labels, np.round(ranked, 6).ravel().tolist(), strict=True)
    tops = zip(*[pairs] * k, strict=True)
    rows = zip(
        labels[::k],
        ranked[:, 0].tolist(),
        (ranked[:, 0] - second).tolist(),
        tops,
        strict=True,
    )
    return list(map(new_tuple, repeat(Prediction), rows))


def model_input(record: RecordLike) -> dict[Any, Any]:
    """The River feature dict of a record.

    >>> from autolabel.core.messages import Record
    >>> model_input(Record(id="1", embedding=[0.5, 2.0]))
    {0: 0.5, 1: 2.0}
    """
    if record.features is not None:
        return dict(record.features)
    if record.text is not None:
        return {"text": record.text}
    assert record.embedding is not None
    return dict(enumerate(record.embedding))


class _Plan(NamedTuple):
    """How one model predicts and learns one example, decided once per model: through
    :mod:`autolabel.model.fast_path` when it is the default tabular pipeline, River's own
    methods otherwise; and its finiteness check."""

    model: Any
    predict_proba_one: Callable[[dict[Any, Any]], Mapping[Hashable, float]]
    learn_one: Callable[[dict[Any, Any], str], bool | None]  # True: it checked finiteness
    finite: FiniteCheck

    @classmethod
    def of(cls, model: Any) -> _Plan:
        fast = fast_path(model)
        target = model if fast is None else fast
        return cls(model, target.predict_proba_one, target.learn_one, FiniteCheck(model))


class Classifier(Protocol):
    """What the labeler and the learner use of a model: :class:`OnlineClassifier`, or
    :class:`autolabel.model.remap.RemappedClassifier` during a recovery."""

    version: int

    def learned(self, kind: RecordKind | None = None) -> int: ...
    def kinds(self) -> Sequence[RecordKind]: ...
    def predict_one(self, record: RecordLike) -> Prediction | None: ...
    def predict(self, records: Sequence[RecordLike]) -> list[Prediction | None]: ...
    def predict_batch(self, records: Sequence[RecordLike]) -> list[Prediction] | None: ...
    def learn(self, record: RecordLike, label: str) -> object: ...


class OnlineClassifier:
    """Per-kind River pipelines behind one predict/learn interface.

    The default tabular pipeline predicts and learns one example at a time through
    :mod:`autolabel.model.fast_path` (the same River state, the same numbers, less
    overhead); every other model through River.
    """

    def __init__(self, settings: ModelSettings, top_k: int = 3) -> None:
        self._settings = settings
        self._top_k = top_k
        self._models: dict[RecordKind, Any] = {}
        self._learned: dict[RecordKind, int] = {}
        self.version = 0
        self._compiled_at = -1
        self._compiled_softmax: CompiledSoftmax | None = None
        self._plans: dict[RecordKind, _Plan] = {}

    def __getstate__(self) -> dict[str, Any]:
        # The compiled batch predictor and the plans are caches (the first holds a
        # lambda): rebuild them after unpickling instead of storing them.
        state = self.__dict__.copy()
        state["_compiled_softmax"] = None
        state["_compiled_at"] = -1
        state["_plans"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("_plans", {})  # snapshots written before plans existed
        self.__dict__.update(state)

    def learned(self, kind: RecordKind | None = None) -> int:
        """Examples learned, for one kind or in all."""
        if kind is None:
            return sum(self._learned.values())
        return self._learned.get(kind, 0)

    def predict_one(self, record: RecordLike) -> Prediction | None:
        model = self._models.get(record.kind)
        if model is None:
            return None
        plan = self._plan(record.kind, model)
        return Prediction.from_proba(plan.predict_proba_one(model_input(record)), self._top_k)

    def predict(self, records: Sequence[RecordLike]) -> list[Prediction | None]:
        """Predictions for a batch, in order; ``None`` where the kind has no model yet.

        Tabular records go through one matrix product when the model is the default
        softmax pipeline (:mod:`autolabel.model.fast_softmax`); the rest one at a time.
        """
        features = [r.features for r in records]
        if features and None not in features:  # every record tabular: the usual batch
            compiled = self._compiled()
            if compiled is not None:
                proba = compiled.predict_proba(features)  # type: ignore[arg-type]
                return Prediction.from_rows(proba, compiled.classes, self._top_k)  # type: ignore[return-value]
        compiled = self._compiled() if any(f is not None for f in features) else None
        if compiled is None:
            return [self.predict_one(r) for r in records]
        tabular = [i for i, r in enumerate(records) if r.features is not None]
        out: list[Prediction | None] = [
            None if r.features is not None else self.predict_one(r) for r in records
        ]
        proba = compiled.predict_proba([records[i].features or {} for i in tabular])
        for i, p in zip(
            tabular, Prediction.from_rows(proba, compiled.classes, self._top_k), strict=True
        ):
            out[i] = p
        return out

    def predict_batch(self, records: Sequence[RecordLike]) -> list[Prediction] | None:
        """Predictions for tabular ``records`` through one matrix product when the model
        is the default softmax pipeline (:mod:`autolabel.model.fast_softmax`: River's
        probabilities up to floating-point rounding); ``None`` otherwise, or for an empty
        batch or one holding a record of another kind (predict those one at a time).

        Raises :class:`NonFiniteOutput` when any record's probabilities are not finite.
        """
        features = [r.features for r in records]
        if not features or None in features:
            return None
        compiled = self._compiled()
        if compiled is None:
            return None
        proba = compiled.predict_proba(features)  # type: ignore[arg-type]
        return Prediction.from_rows(proba, compiled.classes, self._top_k)

    def _compiled(self) -> CompiledSoftmax | None:
        model = self._models.get("features")
        if model is None:
            return None
        if self._compiled_at != self.version:
            self._compiled_at = self.version
            self._compiled_softmax = compile_softmax(model)
        return self._compiled_softmax

    def learn(self, record: RecordLike, label: str) -> None:
        """Learn one example; :class:`NonFiniteOutput` if that made the model non-finite
        (the model is then unusable: restore it from a checkpoint)."""
        model = self._models.get(record.kind)
        if model is None:
            model = self._models[record.kind] = build_model(record.kind, self._settings)
        plan = self._plan(record.kind, model)
        x = model_input(record)
        checked = plan.learn_one(x, label)
        self._learned[record.kind] = self._learned.get(record.kind, 0) + 1
        self.version += 1
        if checked is not True and not plan.finite(x):
            raise NonFiniteOutput(f"learning record {record.id!r} made the model non-finite")

    def _plan(self, kind: RecordKind, model: Any) -> _Plan:
        plan = self._plans.get(kind)
        if plan is None or plan.model is not model:
            plan = self._plans[kind] = _Plan.of(model)
        return plan

    def kinds(self) -> Sequence[RecordKind]:
        return tuple(self._models)

    def adopt(self, other: OnlineClassifier, kinds: Sequence[RecordKind]) -> None:
        """Start these ``kinds`` from copies of ``other``'s models (built with the same
        settings: the caller checks): what this classifier would hold had it learned what
        ``other`` learned of them."""
        for kind in kinds:
            self._models[kind] = copy.deepcopy(other._models[kind])
            self._learned[kind] = other._learned.get(kind, 0)
            self._plans.pop(kind, None)
        self.version += 1
