"""River pipelines, one per input kind, chosen by configuration.

Unsupervised steps (scalers, TF-IDF, one-hot) learn only from labeled
feedback, never from unlabeled traffic while predicting: the model stays a
function of the feedback sequence alone, so a certified threshold cannot be
moved by traffic that nobody reviewed, and replaying the feedback rebuilds it.

>>> model = build_model("features", ModelSettings())
>>> model.learn_one({"x": 1.0, "colour": "red"}, "a")
>>> sorted(model.predict_proba_one({"x": 1.0, "colour": "red"}))
['a']
"""

from __future__ import annotations

import numbers
from typing import Any

from river import (
    compose,
    feature_extraction,
    forest,
    linear_model,
    naive_bayes,
    optim,
    preprocessing,
    tree,
)

from autolabel.core.messages import RecordKind
from autolabel.settings import ModelSettings


def build_model(kind: RecordKind, settings: ModelSettings) -> Any:
    """A fresh, untrained multi-class River classifier for records of ``kind``.

    Classes are discovered online: a label never seen before is simply learned.
    """
    settings = settings.candidates()[0]  # "auto": the first candidate
    if kind == "features":
        return _tabular_inputs() | _tabular_head(settings)
    if kind == "text":
        return _text_model(settings)
    return _embedding_model(settings)


def _tabular_inputs() -> Any:
    numeric = compose.SelectType(numbers.Number) | preprocessing.StandardScaler()
    categorical = compose.SelectType(str) | preprocessing.OneHotEncoder()
    return numeric + categorical


def _tabular_head(settings: ModelSettings) -> Any:
    match settings.tabular:
        case "softmax":
            return linear_model.SoftmaxRegression(optimizer=optim.SGD(0.01))
        case "hoeffding_adaptive_tree":
            return tree.HoeffdingAdaptiveTreeClassifier(seed=settings.seed)
        case "arf":
            return forest.ARFClassifier(n_models=10, seed=settings.seed)
        case "naive_bayes":
            return naive_bayes.GaussianNB()


def _text_model(settings: ModelSettings) -> Any:
    match settings.text:
        case "tfidf_nb":
            return feature_extraction.TFIDF(on="text") | naive_bayes.ComplementNB()
        case "bow_nb":
            return feature_extraction.BagOfWords(on="text") | naive_bayes.MultinomialNB()
        case "tfidf_linear":
            return feature_extraction.TFIDF(on="text") | linear_model.SoftmaxRegression()


def _embedding_model(settings: ModelSettings) -> Any:
    match settings.embedding:
        case "softmax":
            return preprocessing.StandardScaler() | linear_model.SoftmaxRegression(
                optimizer=optim.SGD(0.05)
            )
        case "naive_bayes":
            return naive_bayes.GaussianNB()
