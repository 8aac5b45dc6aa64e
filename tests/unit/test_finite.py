"""The finiteness check sees a non-finite value wherever an example reached, and never
raises a false alarm on a model learned from valid records."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from autolabel.core.messages import DEFAULT_MAX_ABS_NUMBER
from autolabel.model.factory import build_model
from autolabel.model.finite import FiniteCheck, touched_state_is_finite
from autolabel.settings import ModelSettings


def trained(settings: ModelSettings, n: int = 50, scale: float = 1.0) -> Any:
    rng = random.Random(1)
    model = build_model("features", settings)
    for _ in range(n):
        c = rng.randrange(3)
        x = {"x": rng.gauss(c, 1.0) * scale, "y": rng.gauss(-c, 1.0) * scale, "colour": f"c{c}"}
        model.learn_one(x, f"k{c}")
    return model


X = {"x": 0.5, "y": -0.5, "colour": "c1"}


def test_which_models_are_inspected_whole() -> None:
    assert not FiniteCheck(build_model("features", ModelSettings())).predicts
    assert not FiniteCheck(build_model("features", ModelSettings(tabular="naive_bayes"))).predicts
    assert not FiniteCheck(build_model("embedding", ModelSettings())).predicts
    assert FiniteCheck(build_model("features", ModelSettings(tabular="arf"))).predicts
    assert FiniteCheck(build_model("text", ModelSettings())).predicts


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", ["mean", "var", "weight", "one_hot_weight"])
def test_a_non_finite_touched_value_is_seen(where: str, bad: float) -> None:
    model = trained(ModelSettings())
    check = FiniteCheck(model)
    assert check(X)
    scaler = model["TransformerUnion"].transformers["Pipeline"]["StandardScaler"]
    head = model["SoftmaxRegression"]
    if where == "mean":
        scaler.means["y"] = bad
    elif where == "var":
        scaler.vars["x"] = bad
    elif where == "weight":
        head.weights["k2"]["y"] = bad
    else:
        head.weights["k0"]["colour_c1"] = bad
    assert not check(X)
    assert check({"z": 1.0})  # an example that does not reach it


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_gaussian_nb_is_inspected(bad: float) -> None:
    model = trained(ModelSettings(tabular="naive_bayes"))
    check = FiniteCheck(model)
    assert check(X)
    model["GaussianNB"].gaussians["k1"]["colour_c1"]._var.mean._mean = bad
    assert not check(X)


def test_a_model_it_cannot_inspect_is_asked_for_a_prediction() -> None:
    model = trained(ModelSettings(tabular="hoeffding_adaptive_tree"))
    check = FiniteCheck(model)
    assert check.predicts and check(X)
    model.predict_proba_one = lambda x: {"k0": math.nan}
    assert not check(X)


def test_the_doctest_case_without_a_pipeline_cache() -> None:
    model = trained(ModelSettings())
    assert touched_state_is_finite(model, X)


def test_no_false_alarm_at_the_largest_valid_values() -> None:
    """Records at the codec's bound, learned for a while: sums stay finite."""
    model = trained(ModelSettings(), n=2000, scale=DEFAULT_MAX_ABS_NUMBER / 4)
    check = FiniteCheck(model)
    big = {"x": DEFAULT_MAX_ABS_NUMBER, "y": -DEFAULT_MAX_ABS_NUMBER, "colour": "c2"}
    model.learn_one(big, "k0")
    assert check(big)
