"""The fast path leaves exactly River's state and predicts exactly River's probabilities.

Two identical default tabular pipelines see the same stream: one through River's own
``predict_proba_one`` / ``learn_one``, the other through :class:`SoftmaxFastPath`.
After every step the River state of both (scaler counts, means and variances, encoder
values and zero dict, weights per class, optimizer iterations) must be identical: same
keys in the same order, same types, same bits.
"""

from __future__ import annotations

import math
import pickle
import random
import struct
from collections.abc import Iterator
from typing import Any

import pytest
import river
from hypothesis import given, settings
from hypothesis import strategies as st
from river import compose, linear_model, naive_bayes, optim, preprocessing

from autolabel.core.messages import Record
from autolabel.model import fast_path as fast_path_module
from autolabel.model.classifier import NonFiniteOutput, OnlineClassifier, Prediction
from autolabel.model.factory import build_model
from autolabel.model.fast_path import VERIFIED_RIVER, SoftmaxFastPath, fast_path
from autolabel.model.finite import FiniteCheck
from autolabel.settings import ModelSettings

# ---------------------------------------------------------------------- exact comparison


def _exact(value: Any) -> Any:
    """A value's identity for comparison: type and bits (so -0.0 != 0.0, NaN == NaN)."""
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))
    if isinstance(value, dict):
        return (type(value).__name__, [(k, _exact(v)) for k, v in value.items()])
    if isinstance(value, set):
        return ("set", sorted(map(repr, value)))
    return (type(value).__name__, value)


def river_state(model: Any) -> dict[str, Any]:
    """Every piece of state the default pipeline has, in River's own dicts and order."""
    union, head = model.steps.values()
    numeric, categorical = union.transformers.values()
    scaler = numeric["StandardScaler"]
    encoder = categorical["OneHotEncoder"]
    return {
        "counts": _exact(dict(scaler.counts)),
        "means": _exact(dict(scaler.means)),
        "vars": _exact(dict(scaler.vars)),
        "values": _exact(dict(encoder.values)),
        "zero_dict": _exact(encoder._zero_dict),
        "weights": [(label, _exact(dict(w))) for label, w in head.weights.items()],
        "optimizers": [(label, o.n_iterations) for label, o in head.optimizers.items()],
    }


def assert_same_state(river_model: Any, fast_model: Any) -> None:
    expected, actual = river_state(river_model), river_state(fast_model)
    for part in expected:
        assert actual[part] == expected[part], part


def run_both(
    steps: list[tuple[dict[str, Any], str | None, bool]], verdicts: list[bool] | None = None
) -> tuple[Any, Any]:
    """Feed ``steps`` (features, label or None to only predict, predict first?) to River
    and to the fast path, comparing probabilities and state after every step.

    Each learning step's verdict (the fast path saw every value it changed stay finite)
    must agree with :class:`FiniteCheck` as long as the model was finite before it (the
    classifier refuses the first update that is not, and rolls it back): a ``True`` is
    never wrong. They are appended to ``verdicts`` when given."""
    river_model = build_model("features", ModelSettings())
    fast_model = build_model("features", ModelSettings())
    fast = SoftmaxFastPath.for_model(fast_model)
    assert fast is not None
    check = FiniteCheck(fast_model)
    broken = False  # an earlier update made the model non-finite
    for x, y, predict_first in steps:
        if predict_first:
            expected = river_model.predict_proba_one(dict(x))
            actual = fast.predict_proba_one(dict(x))
            assert _exact(actual) == _exact(expected)
            assert_same_state(river_model, fast_model)  # predicting may insert a variance
        if y is None:
            continue
        river_model.learn_one(dict(x), y)
        verdict = fast.learn_one(dict(x), y)
        assert_same_state(river_model, fast_model)
        finite = check(x)
        if verdict and not broken:
            assert finite, "the fast path vouched for a non-finite update"
        broken = broken or not finite
        if verdicts is not None:
            verdicts.append(verdict)
    return river_model, fast_model


# ---------------------------------------------------------------------- random streams

NAMES = ("a", "b", "c", "d", "flag", "n", "c_x")  # "c_x": a number named like c="x"'s one-hot
ORDINARY = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.integers(-1000, 1000),
    st.booleans(),
    st.sampled_from(("x", "y", "z", "red")),
)
HUGE = st.sampled_from((1e15, -1e15, 1e150, -1e150, 5e-324, 0.0, -0.0, 2**53 + 1))


@st.composite
def streams(draw: st.DrawFn, values: st.SearchStrategy[Any]) -> list[Any]:
    """Steps whose features come and go (a constant one among them) and whose classes
    appear one after another, some late."""
    n = draw(st.integers(1, 40))
    late = draw(st.integers(0, 30))  # when classes beyond the first two may appear
    steps = []
    for position in range(n):
        x = draw(st.dictionaries(st.sampled_from(NAMES), values, max_size=6))
        if draw(st.booleans()):
            x["const"] = 2.5  # zero variance: scaled to 0
        if not x:
            x["a"] = 0.5
        ceiling = 1 if position < late else 4
        label = f"k{draw(st.integers(0, ceiling))}"
        steps.append((x, label, draw(st.booleans())))
    return steps


@settings(max_examples=100, deadline=None)
@given(steps=streams(ORDINARY))
def test_random_streams_leave_river_state_bit_for_bit(steps: list[Any]) -> None:
    run_both(steps)


@settings(max_examples=40, deadline=None)
@given(steps=streams(st.one_of(ORDINARY, HUGE)))
def test_huge_but_finite_values_too(steps: list[Any]) -> None:
    run_both(steps)


@settings(max_examples=40, deadline=None)
@given(steps=streams(st.one_of(ORDINARY, st.sampled_from((1e300, -1e300, 1e200)))))
def test_still_river_once_the_model_overflows(steps: list[Any]) -> None:
    """Values whose squares overflow make the model non-finite (the classifier refuses
    such an update); the fast path still does exactly what River does, and never vouches
    for such an update (run_both checks each verdict)."""
    run_both(steps)


def test_the_fast_path_vouches_for_ordinary_updates_and_not_for_overflows() -> None:
    """Its verdict spares the classifier the finiteness check on ordinary updates; an
    update whose variance overflows is left to the check, which refuses it."""
    verdicts: list[bool] = []
    ordinary = [({"a": float(i % 7), "c": "xy"[i % 2]}, f"k{i % 3}", False) for i in range(30)]
    run_both(ordinary, verdicts)
    assert all(verdicts)
    verdicts.clear()
    _, fast_model = run_both([*ordinary, ({"a": 1e300}, "k0", False)], verdicts)
    assert verdicts[-1] is False and not FiniteCheck(fast_model)({"a": 1e300})


def test_the_classifier_refuses_an_overflowing_update_on_the_fast_path() -> None:
    """Records are bounded on the wire (1e15); a deployment that raises the bound past
    what squares can hold still gets the update refused."""
    model = OnlineClassifier(ModelSettings())
    for i in range(20):
        model.learn(Record(id=f"r{i}", features={"a": float(i % 5)}), f"k{i % 2}")
    with pytest.raises(NonFiniteOutput):
        model.learn(Record.model_construct(id="huge", features={"a": 1e300}), "k0")


# ---------------------------------------------------------------------- hand cases


def test_first_example_new_classes_new_features_and_unseen_values() -> None:
    run_both(
        [
            ({"a": 1.0}, "k0", True),  # nothing learned: empty prediction
            ({"a": 2.0, "c": "x"}, "k0", True),  # a category, one class
            ({"a": -1.0, "b": 3}, "k1", True),  # a new feature and a new class
            ({"b": 1, "c": "y", "flag": True}, "k1", False),
            ({"a": 0.0, "c": "never-learned", "d": 7.5}, "k0", True),  # unseen at predict
            ({"d": 1.5, "c_x": 4.0, "c": "x"}, "k2", True),  # c_x collides with c="x"
            ({"c": "x"}, "k3", True),  # strings only, a late class
            ({"const": 1.0, "a": 5.0}, "k0", True),
            ({"const": 1.0, "a": 6.0}, "k3", True),
        ]
    )


def test_a_number_first_seen_while_predicting_gets_rivers_zero_variance() -> None:
    river_model, fast_model = run_both([({"a": 1.0}, "k0", False), ({"a": 2.0}, "k1", False)])
    fast = SoftmaxFastPath.for_model(fast_model)
    assert fast is not None
    x = {"a": 1.5, "new": 3.0}
    assert _exact(fast.predict_proba_one(x)) == _exact(river_model.predict_proba_one(x))
    assert [k for k, _ in river_state(river_model)["vars"][1]] == ["a", "new"]
    assert_same_state(river_model, fast_model)


def test_a_long_stream_of_the_bench_shape() -> None:
    """Ten numbers and a region, four classes, 1,500 examples: still bit for bit."""
    rng = random.Random(3)
    regions = ("north", "south", "east", "west", "centre")
    steps = []
    for _ in range(1500):
        c = rng.randrange(4)
        x: dict[str, Any] = {f"f{j}": round(rng.gauss(c - j / 5, 1.0), 4) for j in range(10)}
        x["region"] = regions[c] if rng.random() < 0.6 else rng.choice(regions)
        steps.append((x, f"class-{c}", rng.random() < 0.5))
    run_both(steps)


def test_dot_iterates_the_shorter_dict_in_its_order() -> None:
    """Classes created late have fewer weights than a record with many numbers has
    features: River sums in the weights' order, not the record's. Shuffled key orders
    and large scores make the two orders round differently, visibly, somewhere."""
    rng = random.Random(11)
    steps: list[tuple[dict[str, Any], str | None, bool]] = []
    for _ in range(20):
        steps.append(({n: rng.uniform(-9, 9) for n in ("d", "flag", "n", "c_x")}, "k0", False))
    for i in range(200):  # k1 and k2 only ever see a, b, c
        x = {n: rng.uniform(-9, 9) for n in ("a", "b", "c")}
        x["a"] += 5 if i % 2 else -5
        steps.append((x, f"k{1 + i % 2}", False))
    names = ["a", "b", "c", "d", "flag", "n", "c_x"]
    for _ in range(100):  # predictions only: k1 and k2 keep their three weights
        rng.shuffle(names)
        steps.append(({n: rng.uniform(-200, 200) for n in names}, None, True))
    run_both(steps)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from("abcdefgh"), st.floats(-1e6, 1e6), max_size=8),
    st.dictionaries(
        st.sampled_from("abcdefgh"),
        st.one_of(st.floats(-1e6, 1e6), st.integers(0, 1)),
        max_size=8,
    ),
)
def test_dot_equals_rivers_dot_bit_for_bit(w: dict[str, float], xt: dict[str, Any]) -> None:
    """Both branches of ``_dot`` (keys of the shorter dict all in the other, or not),
    either dict the shorter, against ``river.utils.math.dot``."""
    from river.utils.math import dot

    for a, b in ((w, xt), (xt, w)):
        assert _exact(fast_path_module._dot(a, b)) == _exact(dot(a, b))


def test_values_river_sees_otherwise_go_through_river() -> None:
    """A value that is not exactly float, int, bool or str (a float subclass here) is
    handled by River's own pipeline, so the result is River's whatever it is."""

    class Reading(float):
        pass

    steps = [({"a": Reading(1.0), "b": 2.0}, "k0", True), ({"a": Reading(3.0)}, "k1", True)]
    run_both(steps)


def test_learn_during_predict_goes_through_river() -> None:
    with compose.learn_during_predict():
        run_both([({"a": 1.0, "c": "x"}, "k0", True), ({"a": 3.0, "c": "y"}, "k1", True)])


def test_infinite_weight_is_updated_by_river() -> None:
    """With a weight already infinite River's ``0 * w`` term gives NaN: the fast path
    hands that update to River."""
    river_model, fast_model = run_both([({"a": 1.0}, "k0", False), ({"a": 2.0}, "k1", False)])
    for model in (river_model, fast_model):
        model["SoftmaxRegression"].weights["k0"]["a"] = -math.inf  # k0 scores -inf: p = 0
    fast = SoftmaxFastPath.for_model(fast_model)
    assert fast is not None
    river_model.learn_one({"a": 3.0}, "k1")
    fast.learn_one({"a": 3.0}, "k1")
    assert_same_state(river_model, fast_model)


# ---------------------------------------------------------------------- who gets the fast path


def _default_union() -> Any:
    return build_model("features", ModelSettings())["TransformerUnion"]


@pytest.mark.parametrize(
    "model",
    [
        _default_union() | linear_model.SoftmaxRegression(optimizer=optim.SGD(0.01), l2=0.1),
        _default_union() | linear_model.SoftmaxRegression(optimizer=optim.Adam()),
        _default_union()
        | linear_model.SoftmaxRegression(
            optimizer=optim.SGD(optim.schedulers.InverseScaling(0.01))
        ),
        _default_union()
        | linear_model.SoftmaxRegression(loss=optim.losses.CrossEntropy({"a": 2.0})),
        _default_union() | naive_bayes.GaussianNB(),
        preprocessing.StandardScaler() | linear_model.SoftmaxRegression(),
        (compose.SelectType(float) | preprocessing.StandardScaler())
        + (compose.SelectType(str) | preprocessing.OneHotEncoder())
        | linear_model.SoftmaxRegression(),
        (compose.SelectType(str) | preprocessing.OneHotEncoder())
        + (compose.SelectType(float, int) | preprocessing.StandardScaler())
        | linear_model.SoftmaxRegression(),
        (compose.SelectType(float, int) | preprocessing.StandardScaler(window_size=10))
        + (compose.SelectType(str) | preprocessing.OneHotEncoder())
        | linear_model.SoftmaxRegression(),
        (compose.SelectType(float, int) | preprocessing.StandardScaler())
        + (compose.SelectType(str) | preprocessing.OneHotEncoder(drop_first=True))
        | linear_model.SoftmaxRegression(),
    ],
    ids=[
        "l2",
        "adam",
        "scheduled-lr",
        "class-weights",
        "naive-bayes",
        "embedding-softmax",
        "floats-only",
        "branches-swapped",
        "window",
        "drop-first",
    ],
)
def test_anything_but_the_default_pipeline_uses_river(model: Any) -> None:
    assert SoftmaxFastPath.for_model(model) is None


@pytest.mark.parametrize("tabular", ["hoeffding_adaptive_tree", "arf", "naive_bayes"])
def test_other_configured_models_use_river(tabular: str) -> None:
    settings = ModelSettings(tabular=tabular)  # type: ignore[arg-type]
    assert fast_path(build_model("features", settings)) is None
    clf = OnlineClassifier(settings)
    clf.learn(Record(id="1", features={"x": 1.0, "c": "a"}), "a")
    model = clf._models["features"]
    assert clf._plan("features", model).learn_one.__self__ is model


def test_the_installed_river_is_the_verified_one() -> None:
    """When this fails River was upgraded: run this file against the new version; if it
    passes, add the version to ``VERIFIED_RIVER``."""
    assert river.__version__.startswith(VERIFIED_RIVER)
    assert fast_path(build_model("features", ModelSettings())) is not None


def test_an_unverified_river_version_uses_river(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_path_module, "VERIFIED_RIVER", "0.0.")
    assert fast_path(build_model("features", ModelSettings())) is None


# ---------------------------------------------------------------------- the classifier


def _records(n: int, seed: int) -> Iterator[tuple[Record, str]]:
    rng = random.Random(seed)
    for i in range(n):
        c = rng.randrange(3)
        features: dict[str, Any] = {"x": rng.gauss(c, 1.0), "y": rng.gauss(-c, 2.0)}
        if rng.random() < 0.7:
            features["colour"] = rng.choice(("red", "green", "blue"))
        yield Record(id=str(i), features=features), f"k{c}"


def test_the_classifier_learns_the_default_model_through_the_fast_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reference = build_model("features", ModelSettings())
    clf = OnlineClassifier(ModelSettings())
    records = list(_records(300, seed=5))
    for record, label in records:
        reference.learn_one(dict(record.features or {}), label)
    # River's pipeline methods are not called: the fast path does the work.
    monkeypatch.setattr(compose.Pipeline, "learn_one", _forbidden)
    monkeypatch.setattr(compose.Pipeline, "predict_proba_one", _forbidden)
    for record, label in records:
        clf.predict_one(record)
        clf.learn(record, label)
    monkeypatch.undo()
    assert_same_state(reference, clf._models["features"])
    probe = records[0][0]
    expected = reference.predict_proba_one(dict(probe.features or {}))
    assert clf.predict_one(probe) == Prediction.from_proba(expected)


def test_the_plan_is_decided_once_per_model_and_not_pickled() -> None:
    clf = OnlineClassifier(ModelSettings())
    record = Record(id="1", features={"x": 1.0})
    clf.learn(record, "a")
    plan = clf._plans["features"]
    clf.learn(record, "b")
    assert clf._plans["features"] is plan
    restored = pickle.loads(pickle.dumps(clf))
    assert restored._plans == {}
    assert restored.predict_one(record) == clf.predict_one(record)
    assert restored._plans["features"].model is restored._models["features"]
    older = clf.__getstate__()  # a snapshot from before plans existed
    del older["_plans"]
    old = OnlineClassifier.__new__(OnlineClassifier)
    old.__setstate__(older)
    assert old.predict_one(record) == clf.predict_one(record)


def _forbidden(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("River's pipeline was called for the default model")
