"""The default tabular pipeline, one example at a time, on River's own state.

The default tabular model (:func:`autolabel.model.factory.build_model`) is

    (SelectType(Number) | StandardScaler) + (SelectType(str) | OneHotEncoder)
        | SoftmaxRegression(SGD(0.01))

River runs it through generic machinery: every call copies the features through both
``SelectType`` steps and the ``TransformerUnion``, builds a gradient dict per class,
and goes through ``Optimizer.step`` and ``utils.math.dot``. :class:`SoftmaxFastPath`
does the same arithmetic directly on the same River objects: the scaler's ``counts``,
``means`` and ``vars``, the encoder's ``values`` and zero dict, the head's ``weights``
and per-class ``optimizers`` (``n_iterations``). River stays the source of truth: the
pipeline pickles, predicts and learns as before, and a pipeline learned here equals,
bit for bit, one learned by River's ``learn_one`` on the same stream (a property test
drives both on random streams and compares every statistic and weight).

Replicated to the letter, because floating-point results depend on it:

- the scaler's Welford update, ``means[i] += (x - old) / n`` and
  ``vars[i] += ((x - old) * (x - new) - vars[i]) / n``, feature by feature in input
  order; scaled value ``(x - mean) / var ** 0.5`` (``** 0.5``, not ``math.sqrt``), 0 for
  a zero variance;
- the union's output order: the one-hot dict (every value seen so far at 0, the
  record's at 1) first, then the scaled numbers, a number overriding a one-hot key of
  the same name;
- ``dot``'s choice of which dict to iterate (the shorter) and ``sum`` in that order;
  ``utils.math.softmax``; ``CrossEntropy`` gradients ``clamp(p) - (y == label)``;
  ``w[i] -= lr * (x_i * loss)`` for every key of the transformed features, new keys and
  new classes inserted where River inserts them;
- River's side effects while predicting: scaling a number never seen before inserts a
  zero variance for it (``defaultdict``), as River's ``transform_one`` does.

The one shortcut: River's gradient is ``x_i * loss + l2 * w_i`` with ``l2 == 0``, and
``0 * w_i`` is a zero (which cannot change ``w_i - lr * g``: weights start at +0.0 and
never become -0.0) unless ``w_i`` is not finite. The learning step checks that the class
scores are finite first, which they are only if every weight they read is; otherwise
it hands the head's update to River's own ``learn_one``.

Anything else goes to River: another head, loss, optimizer or scheduler, ``l2 != 0``,
a windowed or mean-only scaler, an encoder with fixed categories or dropped columns,
a feature value that is not exactly a ``float``, ``int``, ``bool`` or ``str``, River's
``compose.learn_during_predict()``, or a River version this was not checked against.

>>> from autolabel.model.factory import build_model
>>> from autolabel.settings import ModelSettings
>>> river, mine = build_model("features", ModelSettings()), build_model("features", ModelSettings())
>>> fast = fast_path(mine)
>>> for x, y in [({"x": 1.0, "c": "red"}, "a"), ({"x": -2.0, "c": "blue"}, "b")] * 3:
...     river.learn_one(x, y)
...     vouched = fast.learn_one(x, y)  # it saw what it changed stay finite
>>> vouched
True
>>> x = {"x": 0.5, "c": "red"}
>>> fast.predict_proba_one(x) == river.predict_proba_one(x)
True
>>> mine["SoftmaxRegression"].weights == river["SoftmaxRegression"].weights
True
"""

from __future__ import annotations

import math
import numbers
from operator import mul
from typing import Any

from river import compose, linear_model, optim, preprocessing
from river.__version__ import __version__ as RIVER_VERSION
from river.utils.math import softmax

VERIFIED_RIVER = "0.26."
"""River versions (a prefix) whose arithmetic this module replicates; checked by the
property tests in ``tests/unit/test_fast_path.py``. Other versions use River."""

_PLAIN = frozenset((float, int, bool, str))
_P_MAX = 1 - 1e-15  # optim.losses.clamp_proba's bounds, written as River writes them
_P_MIN = 1e-15


def fast_path(model: Any) -> SoftmaxFastPath | None:
    """The fast path for ``model`` if it is exactly the default tabular pipeline and River
    is a verified version (:data:`VERIFIED_RIVER`); ``None`` otherwise: use River."""
    if not RIVER_VERSION.startswith(VERIFIED_RIVER):
        return None
    return SoftmaxFastPath.for_model(model)


class SoftmaxFastPath:
    """``predict_proba_one`` and ``learn_one`` of one default tabular pipeline, reading
    and writing that pipeline's River state (see the module docstring)."""

    __slots__ = ("_encoder", "_head", "_pipeline", "_scaler")

    def __init__(
        self,
        pipeline: compose.Pipeline,
        scaler: preprocessing.StandardScaler,
        encoder: preprocessing.OneHotEncoder,
        head: linear_model.SoftmaxRegression,
    ) -> None:
        self._pipeline = pipeline
        self._scaler = scaler
        self._encoder = encoder
        self._head = head

    @classmethod
    def for_model(cls, model: Any) -> SoftmaxFastPath | None:
        """The fast path of ``model`` if its structure and options are exactly the default
        tabular pipeline's (whatever the River version); ``None`` otherwise."""
        parts = _pipeline_steps(model, 2)
        if parts is None or type(parts[0]) is not compose.TransformerUnion:
            return None
        union, head = parts
        branches = list(union.transformers.values())
        if len(branches) != 2:
            return None
        numeric, categorical = (_pipeline_steps(b, 2) for b in branches)
        if numeric is None or categorical is None:
            return None
        select_number, scaler = numeric
        select_str, encoder = categorical
        if not (
            _selects(select_number, numbers.Number)
            and _selects(select_str, str)
            and type(scaler) is preprocessing.StandardScaler
            and scaler.with_std is True
            and scaler.window_size is None
            and type(encoder) is preprocessing.OneHotEncoder
            and encoder.categories is None
            and not encoder.drop_zeros
            and not encoder.drop_first
            and _default_head(head)
        ):
            return None
        return cls(model, scaler, encoder, head)

    def predict_proba_one(self, x: dict[Any, Any]) -> dict[Any, float]:
        """``Pipeline.predict_proba_one(x)``: the same probabilities, the same dict order."""
        if compose.Pipeline._LEARN_UNSUPERVISED_DURING_PREDICT or not _PLAIN.issuperset(
            map(type, x.values())
        ):
            return self._pipeline.predict_proba_one(x)  # type: ignore[no-any-return]
        scaler = self._scaler
        means, vars_ = scaler.means, scaler.vars
        xt = self._encoder._zero_dict.copy()  # the union: the one-hot branch first
        numbers_out = {}
        for i, xi in x.items():
            if type(xi) is str:
                xt[f"{i}_{xi}"] = 1
            else:
                v = vars_[i]  # inserts 0.0 for a new feature, as River's transform_one does
                numbers_out[i] = (xi - means[i]) / v**0.5 if v else 0.0
        xt.update(numbers_out)  # then the numbers, overriding a one-hot key of that name
        proba = {label: _dot(w, xt) for label, w in self._head.weights.items()}
        softmax(proba)  # in place, as River's SoftmaxRegression.predict_proba_one
        return proba

    def learn_one(self, x: dict[Any, Any], y: Any) -> bool:
        """``Pipeline.learn_one(x, y)``: the same state changes, in the same order.

        Returns whether it saw every value it changed stay finite (the scaler's means and
        variances, every class's weights at the example's features): what
        :class:`~autolabel.model.finite.FiniteCheck` would check, so the caller may skip
        that. ``False`` when River did the work or a changed value is not finite.
        """
        if compose.Pipeline._LEARN_UNSUPERVISED_DURING_PREDICT or not _PLAIN.issuperset(
            map(type, x.values())
        ):
            self._pipeline.learn_one(x, y)
            return False
        # The union's branches learn in order: the scaler from the numbers, then the
        # encoder from the strings.
        scaler = self._scaler
        counts, means, vars_ = scaler.counts, scaler.means, scaler.vars
        numbers_out = {}
        strings = []
        changed = 0.0  # the sum of what changed: NaN or infinite if any of it is
        for i, xi in x.items():
            if type(xi) is str:
                strings.append((i, xi))
                continue
            n = counts[i] + 1
            counts[i] = n
            old = means[i]
            mean = means[i] = old + (xi - old) / n
            var = vars_[i]
            var = vars_[i] = var + ((xi - old) * (xi - mean) - var) / n
            changed += mean + var
            numbers_out[i] = (xi - mean) / var**0.5 if var else 0.0
        encoder = self._encoder
        zero = encoder._zero_dict
        ones = []
        if strings:
            values = encoder.values
            for i, xi in strings:
                seen = values[i]
                key = f"{i}_{xi}"
                if xi not in seen:
                    seen.add(xi)
                    zero[key] = 0
                ones.append(key)
        # The union's output, from the learned steps: one-hot first, then the numbers.
        xt = zero.copy()
        for key in ones:
            xt[key] = 1
        xt.update(numbers_out)
        weights = self._learn_head(xt, y)
        return weights is not None and math.isfinite(changed + weights)

    def _learn_head(self, xt: dict[Any, Any], y: Any) -> float | None:
        """``SoftmaxRegression.learn_one(xt, y)`` with SGD and cross-entropy, ``l2 == 0``;
        the sum of the weights it wrote, or ``None`` when River's own update ran."""
        head = self._head
        weights, optimizers = head.weights, head.optimizers
        if len(optimizers) < len(weights):  # River's look_ahead loop creates missing ones
            for label in weights:
                optimizers[label]
        scores = {label: _dot(w, xt) for label, w in weights.items()}
        if not math.isfinite(sum(scores.values())):
            # A weight this example reads is not finite (or the scores overflowed):
            # River's own update, whose ``0 * w`` terms then matter.
            head.learn_one(xt, y)
            return None
        proba = softmax(scores)
        # CrossEntropy.gradient walks a set of labels; every class updates its own
        # weights, so only the position of a new class matters: River appends it.
        labels = list(weights)
        if y not in weights:
            labels.append(y)
        items = xt.items()
        few = 2 * len(xt)  # a class with at most this many weights is summed whole
        written = 0.0
        for label in labels:
            loss = max(min(proba.get(label, 0.0), _P_MAX), _P_MIN) - (y == label)
            w = weights[label]
            optimizer = optimizers[label]
            lr = optimizer.lr.learning_rate
            for i, xi in items:
                w[i] -= lr * (xi * loss)
            optimizer.n_iterations += 1
            # the weights just written, or all of them (the others are finite already)
            written += sum(w.values()) if len(w) <= few else sum(map(w.__getitem__, xt))
        return written


def _dot(w: dict[Any, float], xt: dict[Any, Any]) -> Any:
    """``utils.math.dot(w, xt)``: iterate the shorter dict, sum in its order.

    When every key of the shorter dict is in the other (the usual case once a model has
    seen every feature) the products are built in C, in the same order, by the same
    ``sum``: the same result, bit for bit, without a generator step per feature.
    """
    if len(w) < len(xt):
        if w.keys() <= xt.keys():
            return sum(map(mul, w.values(), map(xt.__getitem__, w)))
        return sum(wi * xt[i] for i, wi in w.items() if i in xt)
    if xt.keys() <= w.keys():
        return sum(map(mul, map(w.__getitem__, xt), xt.values()))
    return sum(w[i] * xi for i, xi in xt.items() if i in w)


def _pipeline_steps(model: Any, n: int) -> list[Any] | None:
    if type(model) is not compose.Pipeline or len(model.steps) != n:
        return None
    return list(model.steps.values())


def _selects(step: Any, kind: type) -> bool:
    return type(step) is compose.SelectType and step.types == (kind,)


def _default_head(head: Any) -> bool:
    if type(head) is not linear_model.SoftmaxRegression or head.l2 != 0:
        return False
    loss = head.loss
    if type(loss) is not optim.losses.CrossEntropy or loss.class_weight:
        return False
    return all(
        type(o) is optim.SGD and type(o.lr) is optim.schedulers.Constant
        for o in (head.optimizer, *head.optimizers.values())
    )
