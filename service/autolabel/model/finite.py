"""Is a model still finite where an example just touched it?

Learning one example updates only part of a model: the scaler's statistics and the
weights of the features the example has. :func:`touched_state_is_finite` checks exactly
those (and the model's prediction for the example), so the learner can refuse an update
that made the model non-finite, at the cost of a few dozen lookups per example rather
than a walk over the whole model.

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
from typing import Any

from river import compose, linear_model, naive_bayes, preprocessing


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


def _finite(values: Any) -> bool:
    return all(math.isfinite(v) for v in values)


def touched_state_is_finite(model: Any, x: Mapping[Any, Any]) -> bool:
    """The statistics and weights ``x`` reaches are finite, and so is its prediction."""
    names = list(x)
    one_hot = [f"{k}_{v}" for k, v in x.items() if isinstance(v, str)]
    for step in _steps(model):
        if isinstance(step, preprocessing.StandardScaler):
            if not _finite(step.means.get(f, 0.0) for f in names):
                return False
            if not _finite(step.vars.get(f, 0.0) for f in names):
                return False
        elif isinstance(step, linear_model.SoftmaxRegression):
            for weights in step.weights.values():
                if not _finite(weights.get(f, 0.0) for f in names):
                    return False
                if one_hot and not _finite(weights.get(f, 0.0) for f in one_hot):
                    return False
        elif isinstance(step, naive_bayes.GaussianNB):
            for per_class in step.gaussians.values():
                for f in names:
                    g = per_class.get(f)
                    if g is not None and not _finite((g.mu, g.sigma)):
                        return False
    proba = model.predict_proba_one(dict(x))
    return _finite(proba.values())
