"""Batch prediction for the default tabular model, with numpy instead of dict arithmetic.

The default tabular pipeline is ``(numbers → StandardScaler) + (strings → OneHotEncoder)
| SoftmaxRegression``. Its prediction is a linear map: class score = Σ weight * scaled
number + Σ weight of each seen one-hot feature, then a softmax. :func:`compile_softmax`
reads the trained state into arrays once per model version, and
:meth:`CompiledSoftmax.predict_proba` scores a whole batch with one matrix product; the
result equals River's ``predict_proba_one`` up to floating-point rounding (a test
checks it on random models). Any other model uses River one record at a time.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import methodcaller
from typing import Any

import numpy as np
from numpy.typing import NDArray
from river import compose, linear_model, preprocessing

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class CompiledSoftmax:
    """A trained softmax pipeline as arrays."""

    classes: tuple[str, ...]
    numeric: Mapping[str, int]  # feature → column
    mean: FloatArray  # per numeric column
    inv_std: FloatArray  # 1/std, 0 where the variance is 0 (River scales those to 0)
    w_numeric: FloatArray  # columns * classes
    one_hot: Mapping[str, int]  # "feature_value" → row of w_one_hot
    w_one_hot: FloatArray  # one-hot features * classes
    categorical: Mapping[str, Mapping[str, int]]  # feature → value → row of w_one_hot
    _numbers: Any = field(init=False, repr=False, compare=False)  # row → learned numbers

    def __post_init__(self) -> None:
        names = list(self.numeric)  # columns in order
        if len(names) == 1:
            only = names[0]
            getter: Any = lambda row: (row[only],)  # noqa: E731
        elif names:
            getter = operator.itemgetter(*names)
        else:
            getter = lambda row: ()  # noqa: E731
        object.__setattr__(self, "_numbers", getter)

    def predict_proba(self, rows: Sequence[Mapping[str, Any]]) -> FloatArray:
        """Class probabilities, one row per feature dict (columns follow ``classes``).

        One C-level getter per row (into one flat list) when every row holds every
        learned number as a number; row by row otherwise (a missing feature, or a
        string where a number was learned: River one-hot encodes strings, so "3" must
        not be read as 3).
        """
        n, width = len(rows), len(self.numeric)
        scores = np.zeros((n, len(self.classes)))
        try:
            flat = list(chain.from_iterable(map(self._numbers, rows)))
        except KeyError:
            return self._predict_rows(rows)
        values = np.array(flat)  # no dtype: no coercion
        if values.size and values.dtype.kind not in "biuf":  # a string (or worse) in there
            return self._predict_rows(rows)
        values = values.astype(float).reshape(n, width)
        scores += ((values - self.mean) * self.inv_std) @ self.w_numeric
        for name, table in self.categorical.items():
            # The row of each record's value, -1 where it has none that was learned: in
            # C. The table's keys are strings, and no other value equals a string, so
            # a number never finds one (River one-hot encodes strings only).
            try:
                codes = np.fromiter(
                    map(table.get, map(methodcaller("get", name), rows), repeat(-1)),
                    dtype=np.intp,
                    count=n,
                )
            except TypeError:  # an unhashable value: not from a validated record
                return self._predict_rows(rows)
            hits = np.flatnonzero(codes >= 0)
            if hits.size:
                scores[hits] += self.w_one_hot[codes[hits]]
        return _softmax(scores)

    def _predict_rows(self, rows: Sequence[Mapping[str, Any]]) -> FloatArray:
        n, width = len(rows), len(self.numeric)
        values = np.zeros((n, width))
        present = np.zeros((n, width))
        scores = np.zeros((n, len(self.classes)))
        numeric, one_hot, w_one_hot = self.numeric, self.one_hot, self.w_one_hot
        for r, row in enumerate(rows):
            for name, value in row.items():
                if isinstance(value, str):
                    k = one_hot.get(f"{name}_{value}")
                    if k is not None:
                        scores[r] += w_one_hot[k]
                else:
                    j = numeric.get(name)
                    if j is not None:
                        values[r, j] = value
                        present[r, j] = 1.0
        scores += (present * (values - self.mean) * self.inv_std) @ self.w_numeric
        return _softmax(scores)


def _softmax(scores: FloatArray) -> FloatArray:
    scores -= scores.max(axis=1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=1, keepdims=True)
    return scores


def compile_softmax(model: Any) -> CompiledSoftmax | None:
    """Arrays for a trained default tabular pipeline; ``None`` for anything else."""
    if not isinstance(model, compose.Pipeline):
        return None
    steps = list(model.steps.values())
    head = steps[-1]
    if len(steps) != 2 or not isinstance(head, linear_model.SoftmaxRegression):
        return None
    scaler = encoder = None
    union = steps[0]
    if not isinstance(union, compose.TransformerUnion):
        return None
    for branch in union.transformers.values():
        for step in getattr(branch, "steps", {}).values():
            if isinstance(step, preprocessing.StandardScaler):
                scaler = step
            elif isinstance(step, preprocessing.OneHotEncoder):
                encoder = step
    if scaler is None or encoder is None or scaler.window_size is not None or not head.weights:
        return None
    classes = tuple(head.weights)
    numeric = {str(f): j for j, f in enumerate(scaler.means)}
    one_hot_names = sorted(
        {str(f) for weights in head.weights.values() for f in weights} - set(numeric)
    )
    one_hot = {f: k for k, f in enumerate(one_hot_names)}
    w_numeric = np.zeros((len(numeric), len(classes)))
    w_one_hot = np.zeros((len(one_hot), len(classes)))
    for c, label in enumerate(classes):
        for feature, w in head.weights[label].items():
            if (j := numeric.get(str(feature))) is not None:
                w_numeric[j, c] = w
            elif (k := one_hot.get(str(feature))) is not None:
                w_one_hot[k, c] = w
    variances = np.array([scaler.vars[f] for f in scaler.means], dtype=float)
    std = np.sqrt(variances, where=variances > 0, out=np.zeros_like(variances))
    inv_std = np.divide(1.0, std, where=std > 0, out=np.zeros_like(std))
    categorical: dict[str, dict[str, int]] = {}
    for name, seen in encoder.values.items():
        for value in seen:
            if (k := one_hot.get(f"{name}_{value}")) is not None:
                categorical.setdefault(str(name), {})[str(value)] = k
    return CompiledSoftmax(
        classes=tuple(str(c) for c in classes),
        numeric=numeric,
        mean=np.array([scaler.means[f] for f in scaler.means], dtype=float),
        inv_std=inv_std,
        w_numeric=w_numeric,
        one_hot=one_hot,
        w_one_hot=w_one_hot,
        categorical=categorical,
    )
