"""``Prediction.from_proba`` normalises a River probability dict: the same predictions as
the plain reference implementation below, for any dict, ties and zeros included."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolabel.model.classifier import NonFiniteOutput, Prediction


def reference(proba: Mapping[Hashable, float], top_k: int) -> Prediction | None:
    """The obvious implementation (the service's before it was made cheaper)."""
    if not all(math.isfinite(v) for v in proba.values()):
        raise NonFiniteOutput("the model gave a non-finite probability")
    total = sum(v for v in proba.values() if v > 0)
    if not proba or total <= 0:
        return None
    ranked = sorted(
        ((str(k), max(float(v), 0.0) / total) for k, v in proba.items()),
        key=lambda kv: kv[1],
        reverse=True,
    )
    best = ranked[0][1]
    second = ranked[1][1] if len(ranked) > 1 else 0.0
    return Prediction(
        label=ranked[0][0],
        confidence=best,
        margin=best - second,
        top=tuple((k, round(v, 6)) for k, v in ranked[:top_k]),
    )


VALUES = st.one_of(
    st.floats(0.0, 1.0),
    st.sampled_from((0.0, 0.25, 0.5, 1e-300, 5e-324, -0.0, -0.1, 1e308)),  # ties, zeros, overflow
    st.integers(0, 3),
    st.floats(allow_nan=True, allow_infinity=True),
)


@settings(max_examples=400, deadline=None)
@given(
    proba=st.dictionaries(st.one_of(st.text(max_size=3), st.integers(0, 9)), VALUES, max_size=8),
    top_k=st.integers(1, 4),
)
def test_same_as_the_reference(proba: dict[Hashable, float], top_k: int) -> None:
    try:
        expected = reference(proba, top_k)
    except NonFiniteOutput:
        with pytest.raises(NonFiniteOutput):
            Prediction.from_proba(proba, top_k)
        return
    actual = Prediction.from_proba(proba, top_k)
    assert actual == expected
    if actual is not None and expected is not None:
        assert type(actual.confidence) is type(expected.confidence)


def test_numpy_probabilities_as_the_reference() -> None:
    proba = {"a": np.float64(0.2), "b": np.float64(0.8), "c": np.float64(0.0)}
    actual, expected = Prediction.from_proba(proba), reference(proba, 3)
    assert actual == expected
    assert actual is not None and expected is not None
    assert type(actual.confidence) is type(expected.confidence)


def test_empty_and_all_zero() -> None:
    assert Prediction.from_proba({}) is None
    assert Prediction.from_proba({"a": 0.0, "b": -0.0}) is None
