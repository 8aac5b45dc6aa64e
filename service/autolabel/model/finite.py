"""Is a model still finite where an example just touched it?

Learning one example updates only part of a model: the scaler's statistics and the
weights (or per-class Gaussians) of the features the example has. A
:class:`FiniteCheck`, built once per model, checks exactly those, so the learner can
refuse an update that made the model non-finite at the cost of a few sums per example
rather than a walk over the whole model.

For models whose every step it can inspect (scalers, one-hot encoders, softmax
regression, Gaussian naive Bayes: all the linear and Gaussian models of
:mod:`autolabel.model.factory`) that is the whole check: if the touched state is finite,
so is the model's prediction for the example. For the others (trees, forests, text
models) it also asks the model for its prediction on the example, and requires it to be
finite. The default tabular pipeline, when :mod:`autolabel.model.fast_path` updates it,
sums the same values as it writes them and vouches for them itself: the classifier then
skips this check.

>>> from river import linear_model, preprocessing
>>> model = preprocessing.StandardScaler() | linear_model.SoftmaxRegression()
>>> model.learn_one({"x": 1.0}, "a"); model.learn_one({"x": 2.0}, "b")
>>> touched_state_is_finite(model, {"x": 1.5})
True
>>> model.learn_one({"x": 1e308}, "a")  # the variance overflows
>>> touched_state_is_finite(model, {"x": 1e308})
False
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from itertools import repeat
from typing import Any

from river import compose, linear_model, naive_bayes, preprocessing


def touched_state_is_finite(model: Any, x: Mapping[Any, Any]) -> bool:
    """The statistics and weights ``x`` reaches are finite (and, for a model not fully
    inspected, so is its prediction for ``x``). Builds the check each call: a caller
    that checks every example keeps a :class:`FiniteCheck` instead."""
    return FiniteCheck(model)(x)


class FiniteCheck:
    """The finiteness check of one model (see the module docstring); call it with the
    features of the example the model just learned."""

    __slots__ = ("_gaussian_nbs", "_model", "_predicts", "_scalers", "_softmaxes")

    def __init__(self, model: Any) -> None:
        self._model = model
        self._scalers: list[preprocessing.StandardScaler] = []
        self._softmaxes: list[linear_model.SoftmaxRegression] = []
        self._gaussian_nbs: list[naive_bayes.GaussianNB] = []
        inspected = True
        for step in _steps(model):
            if type(step) is preprocessing.StandardScaler and step.window_size is None:
                self._scalers.append(step)
            elif type(step) is linear_model.SoftmaxRegression:
                self._softmaxes.append(step)
            elif type(step) is naive_bayes.GaussianNB:
                self._gaussian_nbs.append(step)
            elif type(step) not in (compose.SelectType, preprocessing.OneHotEncoder):
                inspected = False  # state this check cannot read: ask for a prediction
        self._predicts = not inspected

    @property
    def predicts(self) -> bool:
        """Whether the check asks the model for a prediction (it cannot inspect it all)."""
        return self._predicts

    def __call__(self, x: Mapping[Any, Any]) -> bool:
        # One sum per dict instead of a test per value: NaN and infinities propagate
        # through a sum (inf + -inf is NaN), so a non-finite value always makes the sum
        # non-finite. A sum of finite values could only overflow past 1.8e308, and the
        # values summed here are far below that: the inputs are bounded
        # (``max_abs_number``, 1e15 by default), so are the means, the variances (by its
        # square), and the weights, which move by at most ``lr * sqrt(n)`` per example
        # (a learned value is at most sqrt(n) standard deviations from the mean of n):
        # a finite model never raises a false alarm.
        keys = list(x)
        keys.extend(f"{k}_{v}" for k, v in x.items() if isinstance(v, str))  # one-hot names
        zeros = repeat(0.0)
        total = 0.0
        for scaler in self._scalers:
            total += sum(map(scaler.means.get, keys, zeros))
            total += sum(map(scaler.vars.get, keys, zeros))
        for head in self._softmaxes:
            for weights in head.weights.values():
                total += sum(map(weights.get, keys, zeros))
        for nb in self._gaussian_nbs:
            for per_class in nb.gaussians.values():
                for key in keys:
                    g = per_class.get(key)
                    if g is not None:
                        total += g.mu + g.sigma
        if not math.isfinite(total):
            return False
        if self._predicts:
            proba = self._model.predict_proba_one(dict(x))
            return math.isfinite(sum(proba.values()))
        return True


def _steps(model: Any) -> Iterator[Any]:
    """Every estimator inside pipelines and unions, depth first."""
    if isinstance(model, compose.Pipeline):
        for step in model.steps.values():
            yield from _steps(step)
    elif isinstance(model, compose.TransformerUnion):
        for step in model.transformers.values():
            yield from _steps(step)
    else:
        yield model
