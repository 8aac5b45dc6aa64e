"""Check a human-labeled seed set for likely label errors.

Garbage in the seed set is garbage out of the labeler, so ``autolabel seed``
runs this check before publishing a seed set as feedback.  The method is
confident learning (Northcutt, Jiang & Chuang, 2021, "Confident Learning:
Estimating Uncertainty in Dataset Labels"):

1. Out-of-sample predicted probabilities ``p[i, k]`` come from a scikit-learn
   model cross-validated with :class:`~sklearn.model_selection.StratifiedKFold`
   (every example is scored by a model that never saw it).
2. Per class ``j`` a threshold ``t[j]`` is the mean of ``p[i, j]`` over the
   examples *given* label ``j``: the model's average self-confidence on that
   class.  Per-class thresholds make the method robust to classes the model is
   systematically more or less confident about.
3. An example given label ``g`` is suspicious when ``p[i, g] < t[g]`` and some
   other class ``k`` reaches its own threshold, ``p[i, k] >= t[k]``.  The
   suggested label is the most probable such ``k``.
4. Issues are ranked by self-confidence ``p[i, g]``, lowest first.

Inputs are of the service's three record kinds: feature dicts (flat maps of
numbers, strings and booleans; strings are one-hot encoded), texts, or
embeddings.  Classes with fewer than two examples cannot be cross-validated;
they are reported as unchecked (a class seen once is often a typo of another
label) and left out of the check.

The module is pure: no I/O.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_extraction import DictVectorizer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = [
    "FeatureValue",
    "InputKind",
    "LabelIssue",
    "ModelChoice",
    "SeedReport",
    "confident_issues",
    "effective_folds",
    "find_label_issues",
]

FeatureValue = float | int | str | bool
InputKind = Literal["features", "text", "embedding"]
ModelChoice = Literal["auto", "linear", "boosting"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class LabelIssue:
    """One example whose given label is likely wrong.

    Attributes
    ----------
    index
        Position of the example in the input sequence.
    given
        The label it was given.
    suggested
        The label the cross-validated model confidently prefers.
    given_probability
        Out-of-sample probability of the given label (self-confidence).
    suggested_probability
        Out-of-sample probability of the suggested label.
    """

    index: int
    given: str
    suggested: str
    given_probability: float
    suggested_probability: float


@dataclass(frozen=True, slots=True)
class SeedReport:
    """Result of :func:`find_label_issues`.

    Attributes
    ----------
    n_examples
        Number of examples in the seed set (checked or not).
    n_classes
        Number of distinct labels in the seed set (checked or not).
    issues
        Likely label errors, lowest self-confidence first.
    unchecked_classes
        Labels with fewer than two examples, which could not be checked
        (sorted).
    cv_accuracy
        Accuracy of the out-of-sample predictions against the given labels on
        the checked examples (NaN when nothing could be checked).
    folds
        Number of cross-validation folds used (0 when nothing was checked).
    model
        The model that produced the probabilities, e.g. ``"logistic"`` or
        ``"hist_gradient_boosting"`` (empty when nothing was checked).
    """

    n_examples: int
    n_classes: int
    issues: tuple[LabelIssue, ...]
    unchecked_classes: tuple[str, ...]
    cv_accuracy: float
    folds: int
    model: str = ""

    @property
    def issue_rate(self) -> float:
        """Share of the seed set flagged as likely mislabeled."""
        return len(self.issues) / self.n_examples if self.n_examples else 0.0

    def summary(self, limit: int = 20) -> str:
        """A human-readable multi-line summary (the ``limit`` worst issues).

        Examples
        --------
        >>> report = SeedReport(10, 2, (LabelIssue(3, "a", "b", 0.1, 0.9),), ("c",), 0.9, 5)
        >>> print(report.summary())
        10 examples, 2 classes; 5-fold CV accuracy 0.900
        1 likely label error(s) (10.0%):
          #3: given 'a' (p=0.10), suggested 'b' (p=0.90)
        1 class(es) with fewer than 2 examples not checked: 'c'
        """
        acc = "n/a" if math.isnan(self.cv_accuracy) else f"{self.cv_accuracy:.3f}"
        lines = [
            f"{self.n_examples} examples, {self.n_classes} classes; "
            f"{self.folds}-fold CV accuracy {acc}",
            f"{len(self.issues)} likely label error(s) ({self.issue_rate:.1%}):",
        ]
        lines.extend(
            f"  #{issue.index}: given {issue.given!r} (p={issue.given_probability:.2f}), "
            f"suggested {issue.suggested!r} (p={issue.suggested_probability:.2f})"
            for issue in self.issues[:limit]
        )
        if len(self.issues) > limit:
            lines.append(f"  ... and {len(self.issues) - limit} more")
        if self.unchecked_classes:
            names = ", ".join(repr(c) for c in self.unchecked_classes)
            lines.append(
                f"{len(self.unchecked_classes)} class(es) with fewer than 2 examples "
                f"not checked: {names}"
            )
        return "\n".join(lines)


# --------------------------------------------------------------------------- pure core


def effective_folds(requested: int, class_counts: Sequence[int]) -> int:
    """Fold count usable with stratified CV given per-class example counts.

    Every class must appear in every test fold, so the fold count cannot exceed
    the size of the rarest class; it is never below 2.

    Parameters
    ----------
    requested
        Folds asked for (>= 2).
    class_counts
        Number of examples of each class (each >= 2).

    Returns
    -------
    int
        ``max(2, min(requested, min(class_counts)))``.

    Examples
    --------
    >>> effective_folds(5, [100, 40, 3])
    3
    >>> effective_folds(5, [100, 40])
    5
    >>> effective_folds(5, [2, 2])
    2
    """
    return max(2, min(requested, *class_counts))


def confident_issues(
    probabilities: FloatArray, given: npt.NDArray[np.intp]
) -> list[tuple[int, int, float, float]]:
    """Confident-learning label issues from out-of-sample probabilities.

    Parameters
    ----------
    probabilities
        ``(n, k)`` out-of-sample class probabilities.
    given
        ``(n,)`` index of each example's given class; every class must occur.

    Returns
    -------
    list of tuple
        ``(row, suggested class, p_given, p_suggested)`` for each suspicious
        row, lowest ``p_given`` first (ties by row).

    Examples
    --------
    >>> p = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8], [0.8, 0.2]])
    >>> given = np.array([0, 0, 1, 1, 1])  # row 4 looks like class 0
    >>> confident_issues(p, given)  # thresholds: t0 = 0.75, t1 = 0.57
    [(4, 0, 0.2, 0.8)]
    """
    n, k = probabilities.shape
    rows = np.arange(n)
    self_conf = probabilities[rows, given]
    thresholds = np.array([self_conf[given == j].mean() for j in range(k)])
    above = probabilities >= thresholds[None, :]
    above[rows, given] = False
    suspicious = (self_conf < thresholds[given]) & above.any(axis=1)
    candidates = np.where(above, probabilities, -np.inf)
    suggested = candidates.argmax(axis=1)
    found = [
        (int(i), int(suggested[i]), float(self_conf[i]), float(probabilities[i, suggested[i]]))
        for i in np.flatnonzero(suspicious)
    ]
    found.sort(key=lambda issue: (issue[2], issue[0]))
    return found


# ------------------------------------------------------------------- input handling


def _check_features(inputs: Sequence[Any]) -> list[dict[str, FeatureValue]]:
    rows: list[dict[str, FeatureValue]] = []
    for i, row in enumerate(inputs):
        if not isinstance(row, Mapping):
            raise ValueError(
                f"kind='features' expects a mapping of feature name to value per example; "
                f"example {i} is {type(row).__name__} (pass kind='text' or 'embedding'?)"
            )
        clean: dict[str, FeatureValue] = {}
        for key, value in row.items():
            if isinstance(value, bool | str):
                clean[str(key)] = value
            elif isinstance(value, int | float) and not isinstance(value, bool):
                if not math.isfinite(value):
                    raise ValueError(
                        f"example {i}, feature {key!r}: value {value!r} is not finite; "
                        "drop the feature or impute it"
                    )
                clean[str(key)] = value
            else:
                raise ValueError(
                    f"example {i}, feature {key!r}: values must be numbers, strings or "
                    f"booleans, got {type(value).__name__}"
                )
        rows.append(clean)
    return rows


def _check_texts(inputs: Sequence[Any]) -> list[str]:
    for i, text in enumerate(inputs):
        if not isinstance(text, str):
            raise ValueError(
                f"kind='text' expects a string per example; example {i} is {type(text).__name__}"
            )
    return list(inputs)


def _check_embeddings(inputs: Sequence[Any]) -> FloatArray:
    for i, vec in enumerate(inputs):
        if isinstance(vec, str | Mapping) or not isinstance(vec, Sequence | np.ndarray):
            raise ValueError(
                f"kind='embedding' expects a list of floats per example; example {i} is "
                f"{type(vec).__name__}"
            )
    dims = {len(vec) for vec in inputs}
    if len(dims) != 1:
        raise ValueError(f"embeddings must all have the same length; found lengths {sorted(dims)}")
    if dims == {0}:
        raise ValueError("embeddings are empty (length 0)")
    try:
        matrix = np.asarray(inputs, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"embeddings must contain only numbers: {exc}") from exc
    bad = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
    if bad.size:
        raise ValueError(
            f"embeddings contain NaN or infinite values (examples {bad[:10].tolist()}); "
            "fix or drop them"
        )
    return matrix


# --------------------------------------------------------------------------- models


def _linear(c: float = 1.0) -> LogisticRegression:
    return LogisticRegression(C=c, max_iter=2000)


def _candidates(kind: InputKind, model: ModelChoice, random_state: int) -> list[tuple[str, Any]]:
    if kind == "text":
        return [
            (
                "tfidf+logistic",
                make_pipeline(
                    TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1),
                    _linear(10.0),
                ),
            )
        ]
    if kind == "embedding":
        return [("logistic", make_pipeline(StandardScaler(), _linear()))]
    out: list[tuple[str, Any]] = []
    if model in ("auto", "linear"):
        out.append(
            (
                "logistic",
                make_pipeline(
                    DictVectorizer(sparse=True), StandardScaler(with_mean=False), _linear()
                ),
            )
        )
    if model in ("auto", "boosting"):
        out.append(
            (
                "hist_gradient_boosting",
                make_pipeline(
                    DictVectorizer(sparse=False),
                    # Small, shallow trees: enough for tabular seed sets, cheap, and
                    # less prone to fit the very label noise we look for.
                    HistGradientBoostingClassifier(
                        max_iter=60, max_depth=4, max_leaf_nodes=15, random_state=random_state
                    ),
                ),
            )
        )
    return out


class _Steps:
    """Counts fitted folds for a progress callback."""

    def __init__(self, total: int, callback: Callable[[int, int], None] | None) -> None:
        self.total, self.done, self.callback = total, 0, callback

    def step(self) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(self.done, self.total)


def _out_of_fold_proba(
    estimator: Any, x: Any, y: Any, cv: StratifiedKFold, classes: list[str], steps: _Steps
) -> FloatArray:
    """``cross_val_predict(..., method="predict_proba")``, one fold at a time (for progress).

    Each fold's model is a fresh clone fitted on the other folds; its probabilities fill
    the fold's rows, columns in ``classes`` order (every class is in every training
    fold: ``StratifiedKFold`` with at most as many folds as the rarest class has rows).
    """
    proba = np.zeros((len(y), len(classes)), dtype=np.float64)
    for train, test in cv.split(np.zeros(len(y)), y):
        fitted = clone(estimator).fit(_rows(x, train), y[train])
        columns = [classes.index(str(c)) for c in fitted.classes_]
        proba[np.ix_(test, columns)] = fitted.predict_proba(_rows(x, test))
        steps.step()
    return proba


def _rows(x: Any, index: Any) -> Any:
    return x[index] if isinstance(x, np.ndarray) else [x[i] for i in index]


# ------------------------------------------------------------------------ entry point


def find_label_issues(
    inputs: Sequence[Mapping[str, FeatureValue]] | Sequence[str] | Sequence[Sequence[float]],
    labels: Sequence[str],
    *,
    kind: InputKind = "features",
    folds: int = 5,
    random_state: int = 0,
    model: ModelChoice = "auto",
    on_progress: Callable[[int, int], None] | None = None,
) -> SeedReport:
    """Find likely label errors in a labeled seed set (confident learning).

    Parameters
    ----------
    inputs
        One input per example: feature dicts (``kind="features"``), strings
        (``kind="text"``) or equal-length lists of floats
        (``kind="embedding"``).
    labels
        The given label of each example.
    kind
        Which kind of input ``inputs`` holds.
    folds
        Requested number of stratified CV folds (>= 2); reduced automatically
        to the size of the rarest checked class.
    random_state
        Seed of the fold shuffling (and of the boosting model).
    model
        For ``kind="features"``: ``"linear"`` (one-hot + scaling + logistic
        regression), ``"boosting"`` (histogram gradient boosting) or
        ``"auto"`` (both; keep the one with the higher CV accuracy, ties to
        linear).  Ignored for text (TF-IDF + logistic regression) and
        embeddings (scaling + logistic regression).
    on_progress
        Called with ``(folds fitted, folds to fit)`` after each fold of each model.

    Returns
    -------
    SeedReport
        The issues, ranked by self-confidence ascending, and CV diagnostics.

    Raises
    ------
    ValueError
        On empty input, mismatched lengths, a single class, malformed inputs
        or a bad parameter; the message says what to fix.
    """
    n = len(inputs)
    if n == 0:
        raise ValueError("the seed set is empty: provide at least two labeled examples per class")
    if len(labels) != n:
        raise ValueError(
            f"inputs and labels differ in length ({n} inputs, {len(labels)} labels): "
            "give exactly one label per example"
        )
    if kind not in ("features", "text", "embedding"):
        raise ValueError(f"kind must be 'features', 'text' or 'embedding', got {kind!r}")
    if model not in ("auto", "linear", "boosting"):
        raise ValueError(f"model must be 'auto', 'linear' or 'boosting', got {model!r}")
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    y_all = [str(label) for label in labels]
    counts = Counter(y_all)
    if len(counts) < 2:
        raise ValueError(
            f"the seed set has a single class ({next(iter(counts))!r}); label-error checking "
            "needs at least two classes - add examples of the other classes"
        )

    if kind == "features":
        x_all: Any = _check_features(inputs)
    elif kind == "text":
        x_all = _check_texts(inputs)
    else:
        x_all = _check_embeddings(inputs)

    unchecked = tuple(sorted(c for c, k in counts.items() if k < 2))
    checked_counts = {c: k for c, k in counts.items() if k >= 2}
    if len(checked_counts) < 2:
        return SeedReport(
            n_examples=n,
            n_classes=len(counts),
            issues=(),
            unchecked_classes=tuple(sorted(counts)),
            cv_accuracy=math.nan,
            folds=0,
        )

    keep = [i for i, label in enumerate(y_all) if label in checked_counts]
    x: Any = x_all[keep] if isinstance(x_all, np.ndarray) else [x_all[i] for i in keep]
    classes = sorted(checked_counts)
    class_index = {c: j for j, c in enumerate(classes)}
    y = np.array([y_all[i] for i in keep], dtype=object)
    given = np.array([class_index[label] for label in y], dtype=np.intp)

    n_folds = effective_folds(folds, list(checked_counts.values()))
    cv = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=random_state)

    best: tuple[float, str, FloatArray] | None = None
    candidates = _candidates(kind, model, random_state)
    steps = _Steps(len(candidates) * n_folds, on_progress)
    for name, estimator in candidates:
        try:
            proba = _out_of_fold_proba(estimator, x, y, cv, classes, steps)
        except ValueError as exc:
            if "empty vocabulary" in str(exc):
                raise ValueError(
                    "the texts contain no usable words (empty vocabulary); "
                    "check that the text field is filled"
                ) from exc
            raise
        accuracy = float(np.mean(proba.argmax(axis=1) == given))
        if best is None or accuracy > best[0]:
            best = (accuracy, name, proba)
    assert best is not None
    accuracy, name, proba = best

    issues = tuple(
        LabelIssue(
            index=keep[row],
            given=classes[int(given[row])],
            suggested=classes[suggested],
            given_probability=p_given,
            suggested_probability=p_suggested,
        )
        for row, suggested, p_given, p_suggested in confident_issues(proba, given)
    )
    return SeedReport(
        n_examples=n,
        n_classes=len(counts),
        issues=issues,
        unchecked_classes=unchecked,
        cv_accuracy=accuracy,
        folds=n_folds,
        model=name,
    )
